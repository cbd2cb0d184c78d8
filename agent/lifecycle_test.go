package agent_test

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/agent"
	"github.com/remocal/remocal/agent/internal/redirect"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
)

// agentProcess runs `remocal agent` as its own process and returns the
// address it printed.
func agentProcess(t *testing.T, pid int, extraArgs ...string) (*exec.Cmd, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	args := append([]string{"agent", "--target-pid", fmt.Sprint(pid), "--listen", "unix:" + sock, "--log-level", "debug"}, extraArgs...)
	cmd := exec.Command(remocalBinary(t), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = tWriter{t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("agent printed no address: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "remocal-agent listening on ")
	if !ok {
		t.Fatalf("unexpected first line %q", line)
	}
	return cmd, addr
}

func remocalTables(t *testing.T, pod *localenv.Pod) []string {
	t.Helper()
	ns, err := pod.NS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	names, err := redirect.Tables(ns)
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, n := range names {
		if strings.HasPrefix(n, redirect.TablePrefix) {
			ours = append(ours, n)
		}
	}
	return ours
}

// TestKilledAgentGivesTrafficBack: SIGKILL leaves no chance to clean up, yet
// the owned nftables table dies with the agent's netlink socket.
func TestKilledAgentGivesTrafficBack(t *testing.T) {
	env := envtest.New(t)
	cmd, addr := agentProcess(t, env.App.PID)
	c := connect(t, addr, "alice@laptop")
	local := newLocalServer(t, "alice")
	subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, local.forwarder())
	assertFromLocal(t, env, "/", nil, "alice")
	if tables := remocalTables(t, env.App); len(tables) != 1 {
		t.Fatalf("while stealing: remocal tables = %v, want one", tables)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()
	// The kernel removes an owned table when the owning socket is released,
	// which happens as the process dies: no polling needed.
	if tables := remocalTables(t, env.App); len(tables) != 0 {
		t.Fatalf("after SIGKILL: remocal tables left: %v", tables)
	}
	assertFromApp(t, env, "/", nil)
	if d := time.Since(killed); d > time.Second {
		t.Errorf("traffic came back after %v, want under 1s", d)
	}
	select {
	case <-c.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the client did not notice the agent died")
	}
}

func TestAgentExitsWhenTargetExits(t *testing.T) {
	env := envtest.New(t)
	pod, err := env.StartApp(testCtx(t), "short-lived", netip.MustParseAddr("10.77.0.11"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd, addr := agentProcess(t, pod.PID)
	c := connect(t, addr, "alice@laptop")
	subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeMirror}, newLocalServer(t, "alice").forwarder())

	if err := pod.Kill(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("agent exit after its target exited: %v, want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("agent kept running after its target exited")
	}
	select {
	case <-c.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("client not told the agent is gone")
	}
}

func TestAgentRefusesMissingTarget(t *testing.T) {
	out, err := exec.Command(remocalBinary(t), "agent", "--target-pid", "999999999").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "target process 999999999 does not exist") {
		t.Fatalf("agent for a missing pid: %v, %s", err, out)
	}
}

func TestIdleAgentExits(t *testing.T) {
	env := envtest.New(t)
	ta := startAgent(t, env.App, agentOptions{idleTTL: 200 * time.Millisecond})
	c := connect(t, ta.addr, "alice@laptop")
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := ta.wait(t); !errors.Is(err, agent.ErrIdle) {
		t.Fatalf("Serve returned %v, want ErrIdle", err)
	}
	if tables := remocalTables(t, env.App); len(tables) != 0 {
		t.Errorf("idle exit left tables %v", tables)
	}
}

func TestServeStopsOnContext(t *testing.T) {
	env := envtest.New(t)
	ta := startAgent(t, env.App, agentOptions{})
	c := connect(t, ta.addr, "alice@laptop")
	subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, newLocalServer(t, "alice").forwarder())
	ta.cancel()
	if err := ta.wait(t); err != nil {
		t.Fatalf("Serve after cancel = %v, want nil", err)
	}
	if tables := remocalTables(t, env.App); len(tables) != 0 {
		t.Errorf("shutdown left tables %v", tables)
	}
	assertFromApp(t, env, "/", nil)
}
