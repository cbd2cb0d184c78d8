package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.lsp.dev/jsonrpc2"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/procwatch"
)

// ideDaemon is `remocal daemon` on a developer's laptop and a client of
// it, as an IDE holds one.
type ideDaemon struct {
	t      *testing.T
	client *daemonclient.Client
}

// startDaemon runs `remocal daemon` for d with a copy of d's kubeconfig
// whose context names the test's namespace (a team's developer works in
// their team's namespace: the daemon shows that namespace's sessions when
// it may not list them cluster-wide).
func (f *fixture) startDaemon(d dev) *ideDaemon {
	f.t.Helper()
	kc, err := os.ReadFile(d.kubeconfig)
	if err != nil {
		f.t.Fatal(err)
	}
	if !strings.Contains(string(kc), "namespace: default\n") {
		f.t.Fatalf("%s has no context namespace to replace:\n%s", d.kubeconfig, kc)
	}
	kubeconfig := filepath.Join(f.t.TempDir(), d.name+"-team.kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(strings.Replace(string(kc), "namespace: default\n", "namespace: "+f.ns+"\n", 1)), 0o600); err != nil {
		f.t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "rmcd") // unix socket paths are short
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "d.sock")
	cmd := f.remocal(d, "daemon", "--socket", socket, "--idle-timeout", "0", "--log-level", "debug", "--kubeconfig", kubeconfig)
	p := procwatch.Start(f.t, cmd)
	p.Expect(p.Stderr, "daemon listening")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := daemonclient.Dial(ctx, socket, daemonclient.Options{Name: "operator-e2e", Folders: []string{d.project}})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Call(ctx, daemon.MethodDaemonShutdown, daemon.DaemonShutdownParams{Force: true}, nil); err != nil {
			f.t.Errorf("daemon shutdown: %v", err)
		}
		c.Close()
		p.Wait()
	})
	// The daemon finds the operator in the background; only then does it
	// watch, in the context's namespace (d may not list cluster-wide).
	line := p.Expect(p.Stderr, "watching the operator's sessions")
	mustContain(f.t, "the daemon's log", line, "namespace="+f.ns)
	return &ideDaemon{t: f.t, client: c}
}

// awaitNotification reads d's notifications until one of method, decoded
// afresh, satisfies ok, within within; what it skipped is in the failure.
func awaitNotification[T any](d *ideDaemon, method string, within time.Duration, ok func(T) bool) T {
	d.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	var seen []string
	for {
		select {
		case n := <-d.client.Notifications():
			if n.Method != method {
				continue
			}
			var v T
			if err := json.Unmarshal(n.Params, &v); err != nil {
				d.t.Fatalf("%s %s: %v", n.Method, n.Params, err)
			}
			if ok(v) {
				return v
			}
			seen = append(seen, string(n.Params))
		case <-d.client.Done():
			d.t.Fatal("the daemon closed the connection")
		case <-deadline.C:
			d.t.Fatalf("no awaited %s within %v; saw:\n%s", method, within, strings.Join(seen, "\n"))
		}
	}
}

// remote waits for a remocal/sessionChanged about an operator session
// that satisfies ok.
func (d *ideDaemon) remote(within time.Duration, ok func(daemon.RemoteSession) bool) daemon.RemoteSession {
	d.t.Helper()
	sc := awaitNotification(d, daemon.NotifySessionChanged, within, func(sc daemon.SessionChanged) bool {
		return sc.Remote != nil && ok(*sc.Remote)
	})
	return *sc.Remote
}

// A developer's daemon (bound to remocal-user in the namespace only)
// shows what the operator's sessions do live: bob's filtered steal on a
// Deployment with its owner, target, port, filter and lock; carol's
// admin override of bob's port, as a lock taken from bob's session; and
// bob's session ended through the daemon (remocal/session/kill) by carol,
// after alice's attempt was refused by RBAC.
func TestDaemonShowsOperatorSessions(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	alice := f.user("alice", "remocal-user")
	bob := f.user("bob", "remocal-user")
	carol := f.user("carol", "remocal-admin")
	f.configure(bob, stealFor("bob"))
	f.configure(carol, `{"network": {"incoming": {"mode": "steal"}}}`)
	ide := f.startDaemon(alice)

	started := time.Now().Add(-time.Second) // the cluster's clock may be a little behind
	b := f.start(bob, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
	b.Expect(b.Stderr, `stealing port 8080 of the target where header X-Remocal-User="bob"`)
	r := ide.remote(procwatch.Patience, func(r daemon.RemoteSession) bool {
		return r.User == "bob" && len(r.Ports) == 1 && r.Ports[0].Lock
	})
	t.Logf("bob's session as the daemon shows it: %+v", r)
	p := r.Ports[0]
	if r.Namespace != f.ns || r.Target != "deployment/inventory" || r.Client != "bob@laptop" || r.Phase != daemon.RemoteActive ||
		!strings.HasPrefix(r.Name, "s-") || r.Since.Before(started.Truncate(time.Second)) || time.Since(r.Since) > 5*time.Minute {
		t.Errorf("bob's session shown as %+v", r)
	}
	if p.Port != 8080 || p.Mode != "steal" || p.Filter == nil || p.Filter.Headers["X-Remocal-User"] != "bob" || p.Since == nil {
		t.Errorf("bob's port shown as %+v (filter %v)", p, p.Filter)
	}
	bobSession := r.Name

	// carol, an admin, takes bob's port without a filter.
	err := poll.Until(f.ctx(), time.Minute, func() error {
		// The port is asked for when the program listens; the new
		// binding may take a moment to count.
		r := f.exec(carol, "deployment/inventory", []string{"--on-conflict", "override"}, f.probe(), "listen=:8080")
		if r.Code != 0 || !strings.Contains(r.Stderr, "(taken from its holder: onConflict override)") {
			return fmt.Errorf("carol's override: exit %d: %s", r.Code, r.Stderr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := awaitNotification(ide, daemon.NotifyConflict, procwatch.Patience, func(c daemon.Conflict) bool { return c.Taken })
	t.Logf("the override as the daemon shows it: %s", c.Message)
	if c.RemoteSession != f.ns+"/"+bobSession || c.Port != 8080 || c.Target != "deployment/inventory" || c.SessionID != "" ||
		c.Holder == nil || c.Holder.User != "carol" || c.Holder.Client != "carol@laptop" || !strings.HasPrefix(c.Holder.Session, "s-") ||
		c.Holder.Session == bobSession || c.Holder.Filter != nil || c.Holder.Since == nil {
		t.Errorf("the override shown as %+v (holder %+v)", c, c.Holder)
	}
	mustContain(t, "the conflict's message", c.Message, "carol", bobSession, "8080")
	mustContain(t, "bob's notice", b.Expect(b.Stderr, "carol"), "8080")

	// alice (remocal-user) may not end bob's session through her daemon;
	// carol (remocal-admin) may, and it is shown gone at once.
	err = ide.client.Call(f.ctx(), daemon.MethodSessionKill, daemon.RemoteSessionParams{Namespace: f.ns, Name: bobSession}, nil)
	var je *jsonrpc2.Error
	if !errors.As(err, &je) || je.Code != daemon.CodeForbidden {
		t.Fatalf("alice's kill of bob's session = %v, want forbidden", err)
	}
	mustContain(t, "the refusal", je.Message, "kill", bobSession)
	admin := f.startDaemon(carol)
	if err := admin.client.Call(f.ctx(), daemon.MethodSessionKill, daemon.RemoteSessionParams{Namespace: f.ns, Name: bobSession}, nil); err != nil {
		t.Fatalf("carol's kill of bob's session: %v", err)
	}
	ide.remote(procwatch.Patience, func(r daemon.RemoteSession) bool {
		return r.Name == bobSession && r.Phase == daemon.RemoteEnded && len(r.Ports) == 0
	})
	err = admin.client.Call(f.ctx(), daemon.MethodSessionKill, daemon.RemoteSessionParams{Namespace: f.ns, Name: bobSession}, nil)
	if !errors.As(err, &je) || je.Code != daemon.CodeSessionNotFound {
		t.Errorf("a second kill = %v, want session_not_found", err)
	}
	stop(b)
}
