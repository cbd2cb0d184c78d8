package operator

import (
	"net/http"
	"regexp"
	"testing"
	"time"
)

var connectedLine = regexp.MustCompile(`connected through the operator: session (s-[a-z0-9]+)`)

// A developer with only the shipped remocal-user role (no rights on pods,
// exec, port-forwards or Jobs) runs a program as if inside a Deployment's
// pod: it sees the pod's environment and files and reaches a cluster
// Service, all through the operator.
func TestSessionWithOnlyUserRole(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(`{"fs": {"remote": ["/etc/inventory"]}}`)
	f.deployInventory(1)
	alice := f.user("alice", "remocal-user")

	start := time.Now()
	r := f.exec(alice, "deployment/inventory", []string{"--no-incoming"}, f.probe(),
		"env=GREETING", "read=/etc/inventory/config.json", "get=http://inventory/healthz")
	t.Logf("remocal exec through the operator (cold: the operator starts the agent) took %s", time.Since(start).Round(100*time.Millisecond))
	if r.Code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.Code, r.Stderr)
	}
	if connectedLine.FindStringSubmatch(r.Stderr) == nil {
		t.Errorf("remocal did not say it went through the operator:\n%s", r.Stderr)
	}
	mustContain(t, "stdout", r.Stdout,
		"env GREETING=hello from the cluster",
		`read /etc/inventory/config.json: {`,
		"get http://inventory/healthz: 200 ok",
	)
	// The cluster's own audit log records the session: who opened it on
	// which target.
	requireAudited(t, f.c, "alice", f.ns, "deployment.inventory", http.StatusSwitchingProtocols)

	// Warm: the agent runs already.
	start = time.Now()
	r = f.exec(alice, "deployment/inventory", []string{"--no-incoming"}, f.probe(), "env=GREETING")
	t.Logf("a second session (warm agent) took %s", time.Since(start).Round(100*time.Millisecond))
	mustContain(t, "stdout", r.Stdout, "env GREETING=hello from the cluster")

	// Without the role, the API server refuses (403), and remocal says
	// which permission is missing.
	dave := f.user("dave")
	r = f.exec(dave, "deployment/inventory", []string{"--no-incoming"}, f.probe(), "env=GREETING")
	if r.Code == 0 {
		t.Fatalf("dave, without remocal-user, got a session:\n%s", r.Stderr)
	}
	// The API server's own 403 Status, passed on, then what to do.
	mustContain(t, "dave's refusal", r.Stderr, `is forbidden: User "dave" cannot create resource "targets/portforward" in API group "operator.remocal.dev"`,
		"ask your administrator to bind the remocal-user ClusterRole")
	if r.Stdout != "" {
		t.Errorf("dave's program ran: %s", r.Stdout)
	}
	requireAudited(t, f.c, "dave", f.ns, "deployment.inventory", http.StatusForbidden)
}

// A namespace where sessions ran is deleted promptly while the operator
// is installed: the namespace controller empties it through the
// operator's API too (asking for protobuf first).
func TestNamespaceWithSessionsDeletes(t *testing.T) {
	f := newFixture(t)
	ns := f.c.Namespace(t)
	g := *f
	g.ns, g.toolbox = ns, f.c.Toolbox(ns)
	g.deployInventory(1)
	alice := g.user("alice", "remocal-user")
	r := g.exec(alice, "deployment/inventory", []string{"--no-incoming"}, g.probe(), "env=GREETING")
	if r.Code != 0 {
		t.Fatalf("exit %d:\n%s", r.Code, r.Stderr)
	}
	start := time.Now()
	if _, err := f.c.Kubectl(f.ctx(), "delete", "namespace", ns, "--wait", "--timeout=60s"); err != nil {
		status, _ := f.c.Kubectl(f.ctx(), "get", "namespace", ns, "-o", "jsonpath={.status.conditions}")
		t.Fatalf("namespace %s not deleted within 60 s: %v\n%s", ns, err, status)
	}
	t.Logf("namespace deleted in %s", time.Since(start).Round(100*time.Millisecond))
}
