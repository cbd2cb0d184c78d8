package kube

import (
	"fmt"
	"strings"
	"testing"
)

// appURL is the target pod's port 8080, as other pods reach it.
func appURL(p podInfo, path string) string {
	return fmt.Sprintf("http://%s:8080%s", p.ip, path)
}

// Mirroring: the pod answers as before, and the local program receives a
// copy of the request.
func TestMirror(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	r := f.start("deployment/inventory", nil, f.probe(), "serve=:8080")
	r.Expect(r.Stderr, "mirroring port 8080 of the target to 127.0.0.1:8080")
	if body := f.mustGet(appURL(pod, "/healthz")); body != "ok" {
		t.Errorf("the pod answered %q while mirrored, want its own ok", body)
	}
	r.Expect(r.Stdout, "request GET /healthz")
	if code := r.Wait(); code != 0 { // serve exits after one request
		t.Errorf("exit %d", code)
	}
}

// Stealing with an HTTP filter: matching requests go to the laptop, the
// rest to the pod. The pod's Service carries the stolen traffic too.
func TestStealWithHTTPFilter(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(`{"network": {"incoming": {"mode": "steal", "httpFilter": {"headers": {"X-Remocal-User": "me"}}}}}`)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	r := f.start("deployment/inventory", nil, f.probe(), "serve-all=:8080")
	r.Expect(r.Stderr, `stealing port 8080 of the target where header X-Remocal-User="me"`)
	if body := f.mustGet(appURL(pod, "/healthz")); body != "ok" {
		t.Errorf("an unmatched request got %q, want the pod's ok", body)
	}
	if body := f.mustGet("http://inventory/mine", "X-Remocal-User: me"); body != "local probe" {
		t.Errorf("a matching request through the Service got %q, want the laptop's answer", body)
	}
	r.Expect(r.Stdout, "request GET /mine user=me")
}

// Two developers mirror the same pod; both get every request.
func TestTwoUsersMirror(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	alice := f.startOn(laptop{name: "alice@laptop"}, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
	bob := f.startOn(laptop{local: f.c.LocalSide(t), name: "bob@desk"}, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
	alice.Expect(alice.Stderr, "mirroring port 8080")
	bob.Expect(bob.Stderr, "mirroring port 8080")
	if body, _ := f.get(appURL(pod, "/both")); !strings.Contains(body, "404 page not found") {
		t.Errorf("the pod answered %q while mirrored, want its own 404", body)
	}
	alice.Expect(alice.Stdout, "request GET /both")
	bob.Expect(bob.Stdout, "request GET /both")
}

// A second unfiltered steal of a port is refused, naming who holds it;
// the holder keeps the traffic.
func TestSecondStealRejected(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	// serve-all: the kubelet's readiness probes are stolen too.
	alice := f.startOn(laptop{name: "alice@laptop"}, "deployment/inventory", []string{"--steal"}, f.probe(), "serve-all=:8080")
	alice.Expect(alice.Stderr, "stealing port 8080")
	bob := f.startOn(laptop{local: f.c.LocalSide(t), name: "bob@desk"}, "deployment/inventory", []string{"--steal"}, f.probe(), "serve-all=:8080")
	line := bob.Expect(bob.Stderr, "cannot steal port 8080")
	mustContain(t, "bob's refusal", line, "already stolen without a filter by alice@laptop")
	if body := f.mustGet(appURL(pod, "/who")); body != "local probe" {
		t.Errorf("got %q, want alice's laptop to keep the port", body)
	}
	alice.Expect(alice.Stdout, "request GET /who")
	for _, l := range bob.Lines() {
		if strings.Contains(l, "request GET") {
			t.Errorf("bob received a request: %s", l)
		}
	}
}
