package kube

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/poll"
)

// The agent pod deleted mid-session: the session says so plainly, the
// pod's traffic goes back to the pod, and no redirect rule is left in the
// pod's network namespace.
func TestAgentPodDeleted(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	r := f.start("deployment/inventory", []string{"--steal"}, f.probe(), "serve-all=:8080")
	r.Expect(r.Stderr, "stealing port 8080")
	if body := f.mustGet(appURL(pod, "/stolen")); body != "local probe" {
		t.Fatalf("got %q while stolen", body)
	}
	if len(remocalTables(t, pod.containerID)) == 0 {
		t.Fatal("no remocal table in the pod's namespace while stealing: the check below would prove nothing")
	}
	f.kubectl("delete", "pods", "-l", "app.kubernetes.io/name=remocal-agent", "--wait=true")
	line := r.Expect(r.Stderr, "could not reconnect to the agent")
	if !agentGoneMessage(f, line) {
		t.Errorf("the message does not say the agent is gone: %s", line)
	}
	if body := f.mustGet(appURL(pod, "/healthz")); body != "ok" {
		t.Errorf("after the agent was deleted the pod's port answered %q, want the pod's own ok", body)
	}
	if left := remocalTables(t, pod.containerID); len(left) > 0 {
		t.Errorf("rules left in the pod's network namespace: %v", left)
	}
}

// agentGoneMessage reports whether msg says the agent itself (not the
// target) is gone: its pod deleted, being deleted, or its process exited.
func agentGoneMessage(f *fixture, msg string) bool {
	pod := "the agent pod " + f.ns + "/"
	return strings.Contains(msg, "agent gone") &&
		(strings.Contains(msg, pod) && (strings.Contains(msg, " was deleted") || strings.Contains(msg, " is being deleted")) ||
			strings.Contains(msg, "the agent in pod "+f.ns+"/"))
}

// The target pod restarted (deleted, and replaced by its Deployment): the
// running session follows the target to the new pod, with a new agent
// there, and its program reaches the cluster again.
func TestTargetPodRestarted(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	old := f.pods("app=inventory")[0]
	r := f.start("deployment/inventory", []string{"--no-incoming"}, f.probe(), "hostname", "wait", "get=http://inventory/healthz")
	r.Expect(r.Stdout, "hostname "+old.name)
	r.Expect(r.Stdout, "waiting")
	f.kubectl("delete", "pod", old.name, "--wait=true")
	// Deleted or still being deleted when the session looks: either way
	// it is gone for the session.
	moved := r.Expect(r.Stderr, "the target pod "+f.ns+"/"+old.name+" ")
	if !strings.HasSuffix(moved, " was deleted; following the target") && !strings.HasSuffix(moved, " is being deleted; following the target") {
		t.Errorf("the session does not say the target pod went away: %s", moved)
	}
	line := r.Expect(r.Stderr, "now in deployment/inventory (pod "+f.ns+"/")
	r.Expect(r.Stderr, "reconnected to the agent")
	now := f.pods("app=inventory")[0]
	if now.name == old.name || !strings.Contains(line, now.name) {
		t.Errorf("the session followed the target to %q, want the new pod %s", line, now.name)
	}
	r.Stdin.Write([]byte("\n"))
	r.Expect(r.Stdout, "get http://inventory/healthz: 200 ok")
}

// A rollout replaces the pod whose port a session steals: the session
// follows it, and the new pod's traffic comes to the laptop.
func TestStealFollowsRollout(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	old := f.pods("app=inventory")[0]
	r := f.start("deployment/inventory", []string{"--steal"}, f.probe(), "serve-all=:8080")
	r.Expect(r.Stderr, "stealing port 8080")
	f.kubectl("rollout", "restart", "deployment/inventory")
	r.Expect(r.Stderr, "following the target")
	r.Expect(r.Stderr, "reconnected to the agent")
	r.Expect(r.Stderr, "stealing port 8080")
	f.rollout("deployment/inventory")
	now := f.pods("app=inventory")[0]
	if now.name == old.name {
		t.Fatalf("the rollout kept pod %s", old.name)
	}
	if body := f.mustGet(appURL(now, "/after-rollout")); body != "local probe" {
		t.Errorf("the new pod's port answered %q, want the laptop's", body)
	}
	r.Expect(r.Stdout, "request GET /after-rollout")
}

// A dropped port-forward (the connection to the apiserver cut) is made
// again; the session says so and gets its stolen port back.
func TestPortForwardDropReconnects(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	cut := f.apiserverProxy()
	r := f.start("deployment/inventory", []string{"--steal"}, f.probe(), "serve-all=:8080")
	r.Expect(r.Stderr, "stealing port 8080")
	cut()
	r.Expect(r.Stderr, "lost the connection to the agent")
	r.Expect(r.Stderr, "reconnected to the agent")
	r.Expect(r.Stderr, "stealing port 8080")
	if body := f.mustGet(appURL(pod, "/again")); body != "local probe" {
		t.Errorf("after reconnecting the port answered %q, want the laptop's", body)
	}
	r.Expect(r.Stdout, "request GET /again")
}

// apiserverProxy points the laptop's kubeconfig at a TCP proxy to the
// apiserver, on the host's side of the laptop's veth, and returns a
// function that cuts every connection through it (new ones still pass).
func (f *fixture) apiserverProxy() (cut func()) {
	f.t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(f.local.HostAddr.String(), "0"))
	if err != nil {
		f.t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", net.JoinHostPort(cluster.NodeIP, "6443"))
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	cutAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	f.t.Cleanup(func() {
		l.Close()
		cutAll()
		wg.Wait()
	})
	admin, err := os.ReadFile(f.c.Kubeconfig)
	if err != nil {
		f.t.Fatal(err)
	}
	// The apiserver's certificate names its own address, not the proxy's.
	cfg := strings.Replace(string(admin), "server: https://"+cluster.NodeIP+":6443",
		"server: https://"+l.Addr().String()+"\n    tls-server-name: "+cluster.NodeIP, 1)
	if cfg == string(admin) {
		f.t.Fatalf("unexpected kubeconfig layout in %s", f.c.Kubeconfig)
	}
	f.kubeconfig = filepath.Join(f.t.TempDir(), "kubeconfig")
	if err := os.WriteFile(f.kubeconfig, []byte(cfg), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return cutAll
}

// agent.ephemeral runs the agent inside the target's pod instead of as a
// Job: the session sees the same pod, and incoming traffic works.
func TestEphemeralAgent(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(`{"agent": {"ephemeral": true}}`)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	r := f.start("deployment/inventory", []string{"--steal"}, f.probe(), "env=GREETING", "hostname", "serve-all=:8080")
	r.Expect(r.Stderr, "as ephemeral container remocal-agent-1")
	r.Expect(r.Stdout, "env GREETING=hello from the cluster")
	r.Expect(r.Stdout, "hostname "+pod.name)
	r.Expect(r.Stderr, "stealing port 8080")
	if body := f.mustGet(appURL(pod, "/ephemeral")); body != "local probe" {
		t.Errorf("got %q, want the laptop's answer", body)
	}
	// A second session uses the same ephemeral agent.
	res := f.exec("deployment/inventory", []string{"--no-incoming"}, f.probe(), "hostname")
	mustContain(t, "second session", res.Stderr, "using the running agent")
	if jobs := f.kubectl("get", "jobs", "-o", "name"); jobs != "" {
		t.Errorf("ephemeral mode created Jobs: %s", jobs)
	}
}

// The agent outlives its last session by agent.idleTTL, then exits on its
// own: its Job completes (Kubernetes deletes it ttlSecondsAfterFinished
// later), its rules are gone, and the next session starts a new agent.
func TestAgentExitsWhenIdle(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(`{"agent": {"idleTTL": "1s"}}`)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	p := f.start("deployment/inventory", []string{"--steal"}, f.probe(), "serve=:8080")
	p.Expect(p.Stderr, "stealing port 8080")
	if len(remocalTables(t, pod.containerID)) == 0 {
		t.Fatal("no remocal table in the pod's namespace while stealing: the check below would prove nothing")
	}
	if body := f.mustGet(appURL(pod, "/last")); body != "local probe" {
		t.Fatalf("got %q while stolen", body)
	}
	if code := p.Wait(); code != 0 { // serve exits after one request
		t.Fatalf("exit %d", code)
	}
	err := poll.Until(f.ctx(), 60*time.Second, func() error {
		out := f.kubectl("get", "jobs", "-l", "app.kubernetes.io/name=remocal-agent",
			"-o", `jsonpath={range .items[*]}{.metadata.name} succeeded={.status.succeeded} ttl={.spec.ttlSecondsAfterFinished}{"\n"}{end}`)
		if !strings.Contains(out, "succeeded=1 ttl=60") {
			return fmt.Errorf("agent jobs: %q", out)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the idle agent's Job did not complete: %v", err)
	}
	if left := remocalTables(t, pod.containerID); len(left) > 0 {
		t.Errorf("rules left in the pod's network namespace by the exited agent: %v", left)
	}
	r := f.exec("deployment/inventory", []string{"--no-incoming"}, f.probe(), "hostname")
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	mustContain(t, "stderr", r.Stderr, "starting the agent in the cluster")
}

// Ctrl-C while the agent starts: remocal stops at once and removes the Job
// it created; nothing is left in the cluster.
func TestInterruptDuringAgentStart(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	// An agent image whose /remocal runs but never listens, so the start
	// is still waiting for the agent when the interrupt comes.
	pause := gobuild.Program(t, "github.com/remocal/remocal/test/cluster/cmd/pause", gobuild.Options{Static: true})
	archive := filepath.Join(t.TempDir(), "silent-agent.tar")
	if err := cluster.WriteImage(archive, cluster.Image{Name: "remocal.local/agent:silent", Entrypoint: []string{"/remocal"},
		Files: []cluster.ImageFile{{Path: "/remocal", Source: pause, Mode: 0o755}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.c.ImportImage(f.ctx(), archive); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.c.RemoveImage(context.Background(), "remocal.local/agent:silent"); err != nil {
			t.Error(err)
		}
	})
	f.writeConfig(`{"agent": {"image": "remocal.local/agent:silent"}}`)
	r := f.start("deployment/inventory", []string{"--no-incoming"}, f.probe(), "hostname")
	r.Expect(r.Stderr, "started in") // the pod runs; remocal now waits for the agent to listen
	if err := r.Cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := r.Wait(); code == 0 {
		t.Error("an interrupted start exited 0")
	}
	for _, line := range r.Lines() {
		// Not cancelled, the start would have waited out the agent's
		// listen timeout and said so.
		if strings.Contains(line, "stdout: hostname ") || strings.Contains(line, "cannot reach the agent") {
			t.Errorf("the start went on after the interrupt: %s", line)
		}
	}
	f.noAgentJobs()
}
