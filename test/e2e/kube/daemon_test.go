package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/procwatch"
)

// laptopDaemon is `remocal daemon` on the laptop and a client of it, as an
// IDE would hold one.
type laptopDaemon struct {
	f      *fixture
	client *daemonclient.Client
}

// startDaemon runs `remocal daemon --kubeconfig` in the laptop's network
// namespace. Its socket is a file: the test reaches it from outside.
func (f *fixture) startDaemon() *laptopDaemon {
	f.t.Helper()
	dir, err := os.MkdirTemp("", "rmcd") // unix socket paths are short
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "d.sock")
	cmd := f.remocalCmd(context.Background(), "daemon", "--socket", socket, "--idle-timeout", "0", "--log-level", "debug",
		"--kubeconfig", f.kubeconfig)
	// The flag alone names the cluster, as when an IDE passes it: sessions
	// must not depend on a KUBECONFIG the daemon happens to inherit.
	cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, "KUBECONFIG=") })
	p := procwatch.Start(f.t, cmd)
	p.Expect(p.Stderr, "daemon listening")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := daemonclient.Dial(ctx, socket, daemonclient.Options{Name: "kube-e2e", Folders: []string{f.project}})
	if err != nil {
		f.t.Fatal(err)
	}
	d := &laptopDaemon{f: f, client: c}
	f.t.Cleanup(func() {
		// Gracefully, so that the sessions' hosts close their agent
		// connections before the namespace goes.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Call(ctx, daemon.MethodDaemonShutdown, daemon.DaemonShutdownParams{Force: true}, nil); err != nil {
			f.t.Errorf("daemon shutdown: %v", err)
		}
		c.Close()
		p.Wait()
	})
	return d
}

// start starts a session on target in the test's namespace, stealing,
// for the probe with args, and runs the probe as the result says (in the
// laptop's network namespace, like the daemon).
func (d *laptopDaemon) start(target string, args ...string) (daemon.SessionStartResult, *procwatch.Proc) {
	f := d.f
	f.t.Helper()
	var res daemon.SessionStartResult
	err := d.client.Call(f.ctx(), daemon.MethodSessionStart, daemon.SessionStartParams{Target: target, Namespace: f.ns,
		WorkspaceFolder: f.project, Incoming: "steal", Program: &daemon.Program{Path: f.probe(), Args: args}}, &res)
	if err != nil {
		f.t.Fatalf("session/start %s: %v", target, err)
	}
	// The probe is static: it cannot load the bootstrap library, so the
	// daemon must hand out a wrapper that ends with the program's argv.
	if len(res.Wrapper) <= len(args) || !slices.Equal(res.Wrapper[len(res.Wrapper)-len(args)-1:], append([]string{f.probe()}, args...)) {
		f.t.Fatalf("wrapper %v does not run the probe with %v", res.Wrapper, args)
	}
	cmd := f.local.Command(context.Background(), res.Wrapper[0], res.Wrapper[1:]...)
	cmd.Dir = f.project
	cmd.Env = os.Environ()
	for k, v := range res.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return res, procwatch.Start(f.t, cmd)
}

// waitSession reads notifications until a remocal/sessionChanged for id
// satisfies ok, and returns that session.
func (d *laptopDaemon) waitSession(id string, ok func(daemon.Session) bool) daemon.Session {
	d.f.t.Helper()
	timeout := time.NewTimer(procwatch.Patience)
	defer timeout.Stop()
	var seen []daemon.Session
	for {
		select {
		case n := <-d.client.Notifications():
			if n.Method != daemon.NotifySessionChanged {
				continue
			}
			var sc daemon.SessionChanged
			if err := json.Unmarshal(n.Params, &sc); err != nil {
				d.f.t.Fatalf("%s: %v", n.Params, err)
			}
			if sc.Session.ID != id {
				continue
			}
			if ok(sc.Session) {
				return sc.Session
			}
			seen = append(seen, sc.Session)
		case <-d.client.Done():
			d.f.t.Fatal("the daemon closed the connection")
		case <-timeout.C:
			d.f.t.Fatalf("session %s: no awaited change within %v; saw %+v", id, procwatch.Patience, seen)
		}
	}
}

// detail asks for a session's detail until ok holds of it.
func (d *laptopDaemon) detail(id string, ok func(daemon.SessionDetail) bool) daemon.SessionDetail {
	d.f.t.Helper()
	var det daemon.SessionDetail
	ctx := d.f.ctx()
	err := poll.Until(ctx, procwatch.Patience, func() error {
		det = daemon.SessionDetail{}
		if err := d.client.Call(ctx, daemon.MethodSessionDetail, daemon.SessionParams{ID: id}, &det); err != nil {
			d.f.t.Fatalf("session/detail %s: %v", id, err)
		}
		if !ok(det) {
			return fmt.Errorf("session %s: detail %+v", id, det)
		}
		return nil
	})
	if err != nil {
		d.f.t.Fatal(err)
	}
	return det
}

func (d *laptopDaemon) list() []daemon.Session {
	d.f.t.Helper()
	var res daemon.SessionListResult
	if err := d.client.Call(d.f.ctx(), daemon.MethodSessionList, nil, &res); err != nil {
		d.f.t.Fatal(err)
	}
	return res.Sessions
}

func (d *laptopDaemon) stop(id string) {
	d.f.t.Helper()
	if err := d.client.Call(d.f.ctx(), daemon.MethodSessionStop, daemon.SessionParams{ID: id}, nil); err != nil {
		d.f.t.Fatalf("session/stop %s: %v", id, err)
	}
}

func stealing(port uint16) func(daemon.SessionDetail) bool {
	return func(det daemon.SessionDetail) bool {
		return slices.ContainsFunc(det.Subscriptions, func(s daemon.Subscription) bool {
			return s.Port == port && s.Mode == wire.ModeSteal
		})
	}
}

// waitNoTables polls the pod's network namespace until the agent's tables
// are gone.
func waitNoTables(t *testing.T, pod podInfo) {
	t.Helper()
	err := poll.Until(t.Context(), procwatch.Patience, func() error {
		if left := remocalTables(t, pod.containerID); len(left) > 0 {
			return fmt.Errorf("tables %v in the pod's network namespace", left)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A daemon session on a Deployment is what `remocal exec` gives: the pod's
// environment, its stolen traffic, and everything undone when it stops.
func TestDaemonSessionOnDeployment(t *testing.T) {
	f := newFixture(t)
	// An agent without clients exits at once: its exit removes its tables,
	// which proves the stopped session left none in use.
	f.writeConfig(`{"agent": {"idleTTL": "1s"}}`)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	d := f.startDaemon()

	res, prog := d.start("deploy/inventory", "env=GREETING", "serve-all=:8080")
	id := res.Session.ID
	if s := res.Session; s.State != daemon.StateActive || s.Namespace != f.ns || s.Target != "deploy/inventory" || s.Incoming != "steal" {
		t.Errorf("started session %+v", s)
	}
	// The note says how the agent is reached (the laptop has no route to
	// the pod network: through the port-forward) and, for one replica,
	// nothing about choosing a pod.
	if want := fmt.Sprintf("deployment/inventory (pod %s/%s, container app)", f.ns, pod.name); res.Session.Resolved != want ||
		!strings.HasPrefix(res.Session.Note, "the agent is reached through a port-forward (not directly: ") {
		t.Errorf("the session resolved to %q (note %q), want %q and only the transport in the note for one replica", res.Session.Resolved, res.Session.Note, want)
	}
	if res.Env["GREETING"] != "hello from the cluster" {
		t.Errorf("the session's environment lacks the pod's GREETING: %v", res.Env)
	}
	d.waitSession(id, func(s daemon.Session) bool { return s.State == daemon.StateActive })
	prog.Expect(prog.Stdout, "env GREETING=hello from the cluster")
	prog.Expect(prog.Stdout, "serving :8080")
	d.detail(id, stealing(8080))
	if len(remocalTables(t, pod.containerID)) == 0 {
		t.Fatal("no remocal table in the pod's namespace while stealing: the check after stop would prove nothing")
	}

	if body := f.mustGet("http://inventory/through-daemon"); body != "local probe" {
		t.Errorf("a request to the Service got %q, want the laptop's answer", body)
	}
	prog.Expect(prog.Stdout, "request GET /through-daemon")
	det := d.detail(id, func(det daemon.SessionDetail) bool {
		return slices.ContainsFunc(det.Subscriptions, func(s daemon.Subscription) bool { return s.Port == 8080 && s.Deliveries > 0 })
	})
	if !slices.ContainsFunc(det.Processes, func(p daemon.Process) bool { return filepath.Base(p.Exe) == filepath.Base(f.probe()) }) {
		t.Errorf("the session's processes %+v lack the probe", det.Processes)
	}

	sessions := d.list()
	if len(sessions) != 1 || sessions[0].ID != id || sessions[0].Namespace != f.ns || sessions[0].Target != "deploy/inventory" ||
		sessions[0].State != daemon.StateActive {
		t.Errorf("session/list = %+v", sessions)
	}

	d.stop(id)
	if s := d.waitSession(id, func(s daemon.Session) bool { return s.State == daemon.StateEnded }); s.Reason != "stopped" {
		t.Errorf("ended with reason %q, want stopped", s.Reason)
	}
	if sessions := d.list(); len(sessions) != 0 {
		t.Errorf("session/list after stop = %+v", sessions)
	}
	if body := f.mustGet("http://inventory/healthz"); body != "ok" {
		t.Errorf("after stop the Service answered %q, want the pod's own ok", body)
	}
	waitNoTables(t, pod)
}

// The agent pod deleted under a daemon session: the client learns that
// the session lost its agent, and why; the pod gets its traffic back.
func TestDaemonSessionAgentPodDeleted(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	d := f.startDaemon()

	res, prog := d.start("deployment/inventory", "serve-all=:8080")
	id := res.Session.ID
	prog.Expect(prog.Stdout, "serving :8080")
	d.detail(id, stealing(8080))
	if body := f.mustGet(appURL(pod, "/stolen")); body != "local probe" {
		t.Fatalf("got %q while stolen", body)
	}
	if len(remocalTables(t, pod.containerID)) == 0 {
		t.Fatal("no remocal table in the pod's namespace while stealing: the check below would prove nothing")
	}

	f.kubectl("delete", "pods", "-l", "app.kubernetes.io/name=remocal-agent", "--wait=true")
	s := d.waitSession(id, func(s daemon.Session) bool {
		return s.State == daemon.StateDegraded && strings.Contains(s.Reason, "could not reconnect to the agent")
	})
	if !agentGoneMessage(f, s.Reason) {
		t.Errorf("the reason does not say the agent is gone: %s", s.Reason)
	}
	if sessions := d.list(); len(sessions) != 1 || sessions[0].State != daemon.StateDegraded || !strings.Contains(sessions[0].Reason, "agent") {
		t.Errorf("session/list = %+v, want the degraded session", sessions)
	}
	if body := f.mustGet(appURL(pod, "/healthz")); body != "ok" {
		t.Errorf("after the agent was deleted the pod's port answered %q, want the pod's own ok", body)
	}
	if left := remocalTables(t, pod.containerID); len(left) > 0 {
		t.Errorf("rules left in the pod's network namespace: %v", left)
	}

	// A session without its agent still stops.
	d.stop(id)
	d.waitSession(id, func(s daemon.Session) bool { return s.State == daemon.StateEnded })
}

// With several replicas the session says which pod it uses and what that
// means, as remocal exec does on the terminal.
func TestDaemonSessionNamesThePod(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(2)
	d := f.startDaemon()
	res, _ := d.start("deploy/inventory", "hostname")
	m := chosenPod.FindStringSubmatch(res.Session.Note)
	if m == nil || !strings.Contains(res.Session.Note, "has 2 running pods") {
		t.Fatalf("the session's note %q does not say which of the 2 pods it uses", res.Session.Note)
	}
	if want := fmt.Sprintf("deployment/inventory (pod %s/%s, container app)", f.ns, m[1]); res.Session.Resolved != want {
		t.Errorf("resolved %q, want %q", res.Session.Resolved, want)
	}
	if got := d.list(); len(got) != 1 || got[0].Note != res.Session.Note {
		t.Errorf("session/list %+v does not carry the note", got)
	}
}

// The target's pod deleted under a daemon session: the session follows
// the target to the new pod and says so, active again with the new pod as
// what it resolved to.
func TestDaemonSessionFollowsTarget(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	old := f.pods("app=inventory")[0]
	d := f.startDaemon()
	res, prog := d.start("deploy/inventory", "serve-all=:8080")
	id := res.Session.ID
	d.waitSession(id, func(s daemon.Session) bool { return s.State == daemon.StateActive })
	prog.Expect(prog.Stdout, "serving :8080")
	f.kubectl("delete", "pod", old.name, "--wait=true")
	d.waitSession(id, func(s daemon.Session) bool { return s.State == daemon.StateDegraded })
	moved := d.waitSession(id, func(s daemon.Session) bool {
		return s.State == daemon.StateActive && !strings.Contains(s.Resolved, old.name)
	})
	now := f.pods("app=inventory")[0]
	if want := fmt.Sprintf("deployment/inventory (pod %s/%s, container app)", f.ns, now.name); moved.Resolved != want {
		t.Errorf("after the move the session resolves to %q, want %q", moved.Resolved, want)
	}
	d.detail(id, stealing(8080))
	if body := f.mustGet(appURL(now, "/moved")); body != "local probe" {
		t.Errorf("the new pod's port answered %q, want the laptop's", body)
	}
	prog.Expect(prog.Stdout, "request GET /moved")
}
