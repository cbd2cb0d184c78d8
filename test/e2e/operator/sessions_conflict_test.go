package operator

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	remocaloperator "github.com/remocal/remocal/operator"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/procwatch"
)

// stealFor is a project configuration stealing the requests whose
// X-Remocal-User header is user (the probe prints that header).
func stealFor(user string) string {
	return `{"network": {"incoming": {"mode": "steal", "httpFilter": {"headers": {"X-Remocal-User": "` + user + `"}}}}}`
}

// Two users share one Deployment through the operator: both mirror it,
// then each steals their own requests with a header filter while the rest
// reaches the deployed app. A third user's unfiltered steal is refused
// naming a holder; her override needs the admin role, and the users she
// overrides are told.
func TestUsersShareADeployment(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	alice := f.user("alice", "remocal-user")
	bob := f.user("bob", "remocal-user")

	t.Run("both mirror", func(t *testing.T) {
		a := f.start(alice, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
		b := f.start(bob, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
		a.Expect(a.Stderr, "mirroring port 8080")
		b.Expect(b.Stderr, "mirroring port 8080")
		if body, err := f.get(appURL(pod, "/healthz")); body != "ok" {
			t.Errorf("the app answered %q (%v) while mirrored, want its own ok", body, err)
		}
		a.Expect(a.Stdout, "request GET /healthz")
		b.Expect(b.Stdout, "request GET /healthz")
		stop(a, b)
	})

	f.configure(alice, stealFor("alice"))
	f.configure(bob, stealFor("bob"))
	a := f.start(alice, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
	b := f.start(bob, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
	a.Expect(a.Stderr, `stealing port 8080 of the target where header X-Remocal-User="alice"`)
	b.Expect(b.Stderr, `stealing port 8080 of the target where header X-Remocal-User="bob"`)

	t.Run("filtered steals", func(t *testing.T) {
		if body := f.mustGet(appURL(pod, "/mine"), "X-Remocal-User: alice"); body != "local probe" {
			t.Errorf("alice's request got %q, want her laptop's answer", body)
		}
		a.Expect(a.Stdout, "request GET /mine user=alice")
		if body := f.mustGet("http://inventory/mine", "X-Remocal-User: bob"); body != "local probe" {
			t.Errorf("bob's request through the Service got %q, want his laptop's answer", body)
		}
		b.Expect(b.Stdout, "request GET /mine user=bob")
		if body := f.mustGet(appURL(pod, "/healthz"), "X-Remocal-User: carol"); body != "ok" {
			t.Errorf("an unmatched request got %q, want the app's ok", body)
		}
		for _, p := range []*procLines{{"alice", a.Lines()}, {"bob", b.Lines()}} {
			for _, l := range p.lines {
				if strings.Contains(l, "user=carol") || (p.name == "alice" && strings.Contains(l, "user=bob")) || (p.name == "bob" && strings.Contains(l, "user=alice")) {
					t.Errorf("%s received somebody else's request: %s", p.name, l)
				}
			}
		}
	})

	carol := f.user("carol", "remocal-user")
	f.configure(carol, `{"network": {"incoming": {"mode": "steal"}}}`)
	t.Run("unfiltered steal refused", func(t *testing.T) {
		r := f.exec(carol, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
		if r.Code == 0 {
			t.Fatalf("carol's unfiltered steal went through:\n%s", r.Stderr)
		}
		mustContain(t, "carol's refusal", r.Stderr, "port 8080 of the target (the program's port 8080) is held by another session",
			"already stolen with filter header X-Remocal-User=", "session s-", " since ")
		if !strings.Contains(r.Stderr, "alice") && !strings.Contains(r.Stderr, "bob") {
			t.Errorf("carol's refusal names neither alice nor bob:\n%s", r.Stderr)
		}
	})

	t.Run("continue without the port", func(t *testing.T) {
		r := f.exec(carol, "deployment/inventory", []string{"--on-conflict", "continue"}, f.probe(), "listen=:8080", "env=GREETING")
		if r.Code != 0 {
			t.Fatalf("exit %d under onConflict continue:\n%s", r.Code, r.Stderr)
		}
		mustContain(t, "carol's stderr", r.Stderr, "continuing without port 8080 (onConflict: continue)")
		mustContain(t, "carol's program", r.Stdout, "env GREETING=hello from the cluster")
	})

	t.Run("override needs the admin role", func(t *testing.T) {
		r := f.exec(carol, "deployment/inventory", []string{"--on-conflict", "override"}, f.probe(), "serve-all=:8080")
		if r.Code == 0 {
			t.Fatalf("carol overrode without remocal-admin:\n%s", r.Stderr)
		}
		mustContain(t, "carol's refusal", r.Stderr, "you (carol) may not take port 8080", "needs the verb override on targets")
	})

	t.Run("admin overrides", func(t *testing.T) {
		f.bind("carol", "remocal-admin")
		// The operator caches authorization answers, denials included,
		// for 10 s (as every aggregated API server does): the new role
		// counts from then on.
		bound := time.Now()
		err := poll.Until(f.ctx(), time.Minute, func() error {
			// The port is asked for when the program listens.
			r := f.exec(carol, "deployment/inventory", []string{"--on-conflict", "override"}, f.probe(), "listen=:8080")
			if r.Code != 0 {
				return fmt.Errorf("carol's override: exit %d: %s", r.Code, r.Stderr)
			}
			if !strings.Contains(r.Stderr, "stealing port 8080 of the target to 127.0.0.1:8080 (taken from its holder: onConflict override)") {
				return fmt.Errorf("carol's override did not say it took the port: %s", r.Stderr)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("carol's override went through %s after the binding", time.Since(bound).Round(100*time.Millisecond))
		for _, p := range []*procwatch.Proc{a, b} {
			mustContain(t, "the overridden user's notice", p.Expect(p.Stderr, "carol"), "8080")
		}
		// The ports are carol's now: her steal takes every request.
		c := f.start(carol, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
		c.Expect(c.Stderr, "stealing port 8080")
		f.getUntil(appURL(pod, "/taken"), "local probe", "X-Remocal-User: bob")
		c.Expect(c.Stdout, "request GET /taken user=bob")
	})

	// The override is in the operator's audit lines, and an Event on the
	// Deployment tells its owners; so are the refusals.
	t.Run("audited", func(t *testing.T) {
		lines := f.auditLines(t)
		for _, want := range []struct{ action, decision, user string }{
			{"override", "allow", "carol"}, {"override", "deny", "carol"}, {"subscribe", "deny", "carol"}} {
			if !slices.ContainsFunc(lines, func(l remocaloperator.AuditLine) bool {
				return l.Action == want.action && l.Decision == want.decision && l.User == want.user && l.Target == "deployment/inventory"
			}) {
				t.Errorf("no audit line %+v among %d", want, len(lines))
			}
		}
		err := poll.Until(f.ctx(), 20*time.Second, func() error {
			var list corev1.EventList
			if err := json.Unmarshal([]byte(f.kubectl("get", "events", "--field-selector", "involvedObject.kind=Deployment,involvedObject.name=inventory,reason="+remocaloperator.EventOverride, "-o", "json")), &list); err != nil {
				return err
			}
			if len(list.Items) == 0 || !strings.Contains(list.Items[0].Message, "carol (carol@laptop) took over") {
				return fmt.Errorf("override events on deployment/inventory: %+v", list.Items)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})
}

type procLines struct {
	name  string
	lines []string
}
