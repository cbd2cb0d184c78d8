package kube

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/test/poll"
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
	// serve-all: any path, as a steal takes every request but the kubelet's.
	alice := f.startOn(laptop{name: "alice@laptop"}, "deployment/inventory", []string{"--steal"}, f.probe(), "serve-all=:8080")
	alice.Expect(alice.Stderr, "stealing port 8080")
	bob := f.startOn(laptop{local: f.c.LocalSide(t), name: "bob@desk"}, "deployment/inventory", []string{"--steal"}, f.probe(), "serve-all=:8080")
	// onConflict abort (the default): bob's session ends, saying who holds
	// the port.
	line := bob.Expect(bob.Stderr, "port 8080 of the target (the program's port 8080) is held by another session")
	mustContain(t, "bob's refusal", line, "already stolen without a filter by alice@laptop", "onConflict: abort")
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

// While a port is stolen the kubelet's probes keep reaching the pod: a
// liveness probe failing on a laptop would restart the container and end
// the session. Every other request is the laptop's.
func TestStealLeavesKubeletProbesToThePod(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1) // a readiness probe on GET /healthz every second
	pod := f.pods("app=inventory")[0]
	r := f.start("deployment/inventory", []string{"--steal"}, f.probe(), "serve-all=:8080")
	r.Expect(r.Stderr, "stealing port 8080")
	if body := f.mustGet(appURL(pod, "/healthz")); body != "local probe" {
		t.Fatalf("a request from another pod got %q, want the laptop's answer", body)
	}
	r.Expect(r.Stdout, "request GET /healthz")

	probes := func() int { return strings.Count(f.kubectl("logs", pod.name), "GET /healthz") }
	before := probes()
	err := poll.Until(f.ctx(), 30*time.Second, func() error {
		if n := probes() - before; n < 2 {
			return fmt.Errorf("%d kubelet probes reached the pod since the steal began", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the kubelet's probes do not reach the pod while its port is stolen: %v", err)
	}
	for _, line := range r.Lines() {
		if strings.Contains(line, "kube-probe") {
			t.Errorf("the laptop received a kubelet probe: %s", line)
		}
	}
}
