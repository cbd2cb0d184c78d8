package operator

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/procwatch"
)

// session returns the session named name, or nil when there is none.
func (f *fixture) session(name string) *operator.Session {
	f.t.Helper()
	for _, s := range f.sessions() {
		if s.Name == name {
			return &s
		}
	}
	return nil
}

// holdsLock says whether s holds a lock on port.
func holdsLock(s *operator.Session, port uint16) bool {
	if s == nil {
		return false
	}
	for _, p := range s.Status.Ports {
		if p.Port == port && p.Lock {
			return true
		}
	}
	return false
}

// stealing starts alice's unfiltered steal of deployment/inventory and
// returns it with its session's name once a request reaches it.
func (f *fixture) stealing(d dev, pod podInfo) (*procwatch.Proc, string) {
	f.t.Helper()
	f.configure(d, `{"network": {"incoming": {"mode": "steal"}}}`)
	r := f.start(d, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
	m := connectedLine.FindStringSubmatch(r.Expect(r.Stderr, "connected through the operator"))
	if m == nil {
		f.t.Fatal("remocal did not name its operator session")
	}
	r.Expect(r.Stderr, "stealing port 8080")
	f.getUntil(appURL(pod, "/stolen"), "local probe")
	r.Expect(r.Stdout, "request GET /stolen")
	if !holdsLock(f.session(m[1]), 8080) {
		f.t.Fatalf("session %s holds no lock on port 8080: %+v", m[1], f.session(m[1]))
	}
	return r, m[1]
}

// A client killed outright (no goodbye): its traffic goes back to the
// app at once, its lock stays reserved while the session is
// Disconnected, and is gone once the session TTL has passed.
func TestKilledClientsLockExpires(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	alice := f.user("alice", "remocal-user")
	r, name := f.stealing(alice, pod)

	killed := time.Now()
	if err := syscall.Kill(-r.Cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.Wait()
	f.getUntil(appURL(pod, "/healthz"), "ok")
	back := time.Since(killed)
	t.Logf("traffic back to the app %s after SIGKILL", back.Round(100*time.Millisecond))
	if s := f.session(name); back < sessionTTL-3*time.Second {
		if s == nil || s.Status.Phase != operator.PhaseDisconnected || !holdsLock(s, 8080) {
			t.Errorf("%s after the kill the session should be Disconnected and still hold its lock: %+v", back, s)
		}
	}
	err := poll.Until(f.ctx(), sessionTTL+30*time.Second, func() error {
		if s := f.session(name); holdsLock(s, 8080) {
			return fmt.Errorf("session %s (%s) still holds port 8080", name, s.Status.Phase)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	expired := time.Since(killed)
	t.Logf("lock gone %s after SIGKILL (session TTL %s)", expired.Round(100*time.Millisecond), sessionTTL)
	if expired > sessionTTL+10*time.Second {
		t.Errorf("the lock outlived the session TTL %s by %s", sessionTTL, expired-sessionTTL)
	}
	if expired < sessionTTL-time.Second {
		t.Errorf("the lock went after %s, before the session TTL %s: a reconnect could not have resumed it", expired, sessionTTL)
	}
}

// A client whose connection drops (its TCP connection to the API server
// aborted on the laptop, as a network failure does) reconnects within
// the TTL and keeps its session: same name, same lock, traffic again.
func TestDroppedConnectionResumes(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	alice := f.user("alice", "remocal-user")
	r, name := f.stealing(alice, pod)
	since := f.session(name).Status.Ports[0].Since

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// ss -K aborts the sockets (the kernel resets them): the laptop's
	// every connection to the API server, the session's among them.
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", alice.local.Name, "ss", "-K", "-t", "dst", f.c.NodeIP).CombinedOutput()
	if err != nil {
		t.Fatalf("ss -K: %v: %s", err, out)
	}
	dropped := time.Now()
	r.Expect(r.Stderr, "lost the connection to the operator (session "+name+")")
	r.Expect(r.Stderr, "reconnected to the operator (session "+name+")")
	t.Logf("resumed %s after the drop", time.Since(dropped).Round(10*time.Millisecond))
	f.getUntil(appURL(pod, "/again"), "local probe")
	r.Expect(r.Stdout, "request GET /again")
	s := f.session(name)
	if s == nil || s.Status.Phase != operator.PhaseActive || !holdsLock(s, 8080) {
		t.Fatalf("after the reconnect session %s should be Active with its lock: %+v", name, s)
	}
	if got := s.Status.Ports[0].Since; got == nil || since == nil || !got.Equal(since) {
		t.Errorf("the lock's since changed from %v to %v: the lock was given up and taken again", since, got)
	}
	if n := len(f.sessions()); n != 1 {
		t.Errorf("%d sessions after the reconnect, want the one resumed", n)
	}
}

// A client that goes silent (its network gone: no reset, no goodbye, as
// a laptop that sleeps) is noticed by the keepalive; its traffic goes
// back to the app and its lock expires a TTL later. When its network
// comes back, the client reconnects: its session is gone, so it gets a
// new one and asks for its port again.
func TestSilentClientsLockExpires(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	alice := f.user("alice", "remocal-user")
	r, name := f.stealing(alice, pod)

	route := []string{"-n", alice.local.Name, "route", "%s", f.c.NodeIP + "/32", "via", alice.local.HostAddr.String()}
	ip := func(verb string) {
		t.Helper()
		args := append([]string(nil), route...)
		args[3] = verb
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	ip("del") // the laptop's only route: its packets go nowhere
	cut := time.Now()
	restored := false
	t.Cleanup(func() {
		if !restored {
			ip("add")
		}
	})
	f.getUntil(appURL(pod, "/healthz"), "ok")
	t.Logf("traffic back to the app %s after the network went", time.Since(cut).Round(100*time.Millisecond))
	err := poll.Until(f.ctx(), time.Minute, func() error {
		if s := f.session(name); holdsLock(s, 8080) {
			return fmt.Errorf("session %s (%s) still holds port 8080", name, s.Status.Phase)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lock gone %s after the network went (session TTL %s)", time.Since(cut).Round(100*time.Millisecond), sessionTTL)

	ip("add")
	restored = true
	r.Expect(r.Stderr, "reconnected to the operator")
	r.Expect(r.Stderr, "stealing port 8080")
	f.getUntil(appURL(pod, "/back"), "local probe")
	r.Expect(r.Stdout, "request GET /back")
}
