package sessionhost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/interpose/session"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/syncbuf"
)

// debianPython is Debian's python3, dynamically linked against glibc.
func debianPython(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is required: %v", err)
	}
	return p
}

const joinScript = `
import os, socket
print("env", os.environ.get("API_TOKEN"))
print("file", "remote" if '"environment": "remote"' in open("/etc/inventory/config.json").read() else "local")
print("resolve", socket.gethostbyname("redis"))
`

// A program started with Ready.Env (as an IDE starts it) joins the session
// through the LD_PRELOAD bootstrap: it reads the target's file and resolves
// with the target's DNS, which the environment alone cannot do.
func TestReadyEnvJoinsPrograms(t *testing.T) {
	env := envtest.New(t)
	h := startHost(t, appSpec(t, env, "s1"))
	ready := h.Ready()
	if got := ready.Env["API_TOKEN"]; got != localenv.AppAPIToken {
		t.Errorf("Ready.Env[API_TOKEN] = %q, want the target's %q", got, localenv.AppAPIToken)
	}
	if got := ready.Env[session.SocketEnv]; got != h.spec.Socket {
		t.Errorf("Ready.Env[%s] = %q, want %q", session.SocketEnv, got, h.spec.Socket)
	}
	lib := ready.Env["LD_PRELOAD"]
	if filepath.Dir(lib) != h.spec.LibraryDir {
		t.Errorf("LD_PRELOAD = %q, want the library in %s", lib, h.spec.LibraryDir)
	} else if _, err := os.Stat(lib); err != nil {
		t.Errorf("the bootstrap library: %v", err)
	}
	for _, local := range []string{"PATH", "HOME"} {
		if v, ok := ready.Env[local]; ok {
			t.Errorf("Ready.Env has %s=%q: it describes this machine and must stay local", local, v)
		}
	}
	if ready.Incoming != "mirror" || ready.Warnings == nil || len(ready.Warnings) != 0 {
		t.Errorf("Ready incoming %q warnings %q, want mirror and an empty list", ready.Incoming, ready.Warnings)
	}

	r := run(t, programEnv(ready), debianPython(t), "-c", joinScript)
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("python: exit %d, stderr %q", r.Code, r.Stderr)
	}
	mustContain(t, "python output", r.Stdout, "env "+localenv.AppAPIToken, "file remote", "resolve "+localenv.RedisIP.String())
	d := h.detail(t)
	if d.Supervised != 1 || d.Counters["open"] == 0 || d.Counters["connect"] == 0 {
		t.Errorf("detail: %d programs joined, counters %v; want 1, and remote opens and connects", d.Supervised, d.Counters)
	}
}

// The wrapper the daemon gives IDEs for static programs: `remocal exec
// --join SOCKET -- PROGRAM` makes a static Go binary join.
func TestWrapperJoinsStaticPrograms(t *testing.T) {
	env := envtest.New(t)
	h := startHost(t, appSpec(t, env, "s1"))
	probe := built(t, "probe")
	r := run(t, programEnv(h.Ready()), joinArgv(t, h.spec.Socket, nil, probe,
		"env=API_TOKEN", "read="+localenv.AppConfigPath, "resolve=redis", "hostname")...)
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	mustContain(t, "probe output", r.Stdout, "env API_TOKEN="+localenv.AppAPIToken, `"environment": "remote"`,
		"resolve redis: "+localenv.RedisIP.String(), "hostname "+env.App.Hostname)
	if r.Stderr != "" {
		t.Errorf("stderr %q, want nothing", r.Stderr)
	}
	if d := h.detail(t); d.Supervised != 1 {
		t.Errorf("%d programs joined, want 1", d.Supervised)
	}

	// The same without the bootstrap library in the environment: the
	// wrapper itself does the handoff.
	var plain []string
	for _, kv := range programEnv(h.Ready()) {
		if !strings.HasPrefix(kv, "LD_PRELOAD=") && !strings.HasPrefix(kv, session.SocketEnv+"=") {
			plain = append(plain, kv)
		}
	}
	r = run(t, plain, joinArgv(t, h.spec.Socket, nil, probe, "read="+localenv.AppConfigPath, "hostname")...)
	if r.Code != 0 {
		t.Fatalf("without LD_PRELOAD: exit %d", r.Code)
	}
	mustContain(t, "probe output", r.Stdout, `"environment": "remote"`, "hostname "+env.App.Hostname)
	if d := h.detail(t); d.Supervised != 2 {
		t.Errorf("%d programs joined, want 2", d.Supervised)
	}
}

func TestWrapperFailures(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone.sock")
	r := run(t, os.Environ(), joinArgv(t, missing, nil, "true")...)
	if r.Code != 1 || !strings.Contains(r.Stderr, "no remocal session at "+missing) || !strings.Contains(r.Stderr, "start the session first") {
		t.Errorf("unreachable session: exit %d, stderr %q; want 1 and a hint", r.Code, r.Stderr)
	}
	r = run(t, os.Environ(), joinArgv(t, missing, nil, "no-such-program-anywhere")...)
	if r.Code != 127 || !strings.Contains(r.Stderr, `"no-such-program-anywhere" is not in PATH`) {
		t.Errorf("unknown program: exit %d, stderr %q; want 127", r.Code, r.Stderr)
	}
	r = run(t, os.Environ(), joinArgv(t, missing, []string{"--steal"}, "true")...)
	if r.Code != 1 || !strings.Contains(r.Stderr, "--steal cannot be combined") {
		t.Errorf("--join --steal: exit %d, stderr %q; want 1 and a refusal", r.Code, r.Stderr)
	}
}

// With TransparentFirst, the first program that joins (a debugger that
// starts the program) is not intercepted; its child is. A later program is
// not the first any more. The wrapper joins by itself, or through the
// bootstrap library when Ready.Env is in its environment (remocal is
// dynamically linked here).
func TestTransparentFirst(t *testing.T) {
	env := envtest.New(t)
	// Not on the built-in list of local programs: only the session can
	// make it transparent.
	debugger := filepath.Join(t.TempDir(), "my-debugger")
	data, err := os.ReadFile(built(t, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(debugger, data, 0o755); err != nil {
		t.Fatal(err)
	}
	local, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, bootstrapEnv := range []bool{true, false} {
		t.Run(fmt.Sprintf("bootstrapEnv=%v", bootstrapEnv), func(t *testing.T) {
			spec := appSpec(t, env, "s1")
			spec.TransparentFirst = true
			h := startHost(t, spec)
			progEnv := programEnv(h.Ready())
			if !bootstrapEnv {
				progEnv = slices.DeleteFunc(progEnv, func(kv string) bool {
					return strings.HasPrefix(kv, "LD_PRELOAD=") || strings.HasPrefix(kv, session.SocketEnv+"=")
				})
			}
			argv := joinArgv(t, h.spec.Socket, []string{"--transparent-first"}, debugger, "hostname", "run="+built(t, "probe")+"+hostname")
			r := run(t, progEnv, argv...)
			if want := "hostname " + local + "\nhostname " + env.App.Hostname + "\n"; r.Code != 0 || r.Stdout != want {
				t.Errorf("exit %d, stdout %q, want %q: the debugger local, its child in the target", r.Code, r.Stdout, want)
			}
			r = run(t, progEnv, argv...)
			if want := "hostname " + env.App.Hostname + "\nhostname " + env.App.Hostname + "\n"; r.Code != 0 || r.Stdout != want {
				t.Errorf("second program: exit %d, stdout %q, want %q: only the first is transparent", r.Code, r.Stdout, want)
			}
			if d := h.detail(t); d.Supervised != 2 {
				t.Errorf("%d programs joined, want 2", d.Supervised)
			}
		})
	}
}

// Detail reports the subscription of a listening program, the remote
// operations and the processes.
func TestDetail(t *testing.T) {
	env := envtest.New(t)
	h := startHost(t, appSpec(t, env, "s1"))
	probe := built(t, "probe")
	p := start(t, programEnv(h.Ready()), joinArgv(t, h.spec.Socket, nil, probe, "read="+localenv.AppConfigPath, "serve=:8080")...)
	p.Expect(p.Stdout, "serving :8080")
	ev := h.events.wait(t, daemon.EventSubscribed)
	if !strings.Contains(ev.Message, "mirroring port 8080 of the target to 127.0.0.1:8080") {
		t.Errorf("subscribed event %+v", ev)
	}
	d := h.detail(t)
	want := daemon.Subscription{Port: 8080, LocalPort: 8080, Mode: wire.ModeMirror}
	if len(d.Subscriptions) != 1 || d.Subscriptions[0] != want {
		t.Errorf("subscriptions %+v, want just %+v", d.Subscriptions, want)
	}
	if d.Counters["listen"] != 1 || d.Counters["open"] == 0 || d.Counters["notified"] == 0 {
		t.Errorf("counters %v: want one listen, remote opens, notifications", d.Counters)
	}
	found := false
	for _, proc := range d.Processes {
		if proc.PID == p.Cmd.Process.Pid && proc.Exe == probe {
			found = true
		}
	}
	if !found {
		t.Errorf("processes %+v lack the probe (pid %d, %s)", d.Processes, p.Cmd.Process.Pid, probe)
	}
	if len(d.Errors) != 0 {
		t.Errorf("errors %q, want none", d.Errors)
	}

	// The target answers a request and the program gets a copy.
	resp, err := env.HTTP(env.Peer).Get(fmt.Sprintf("http://%s:%d/detail", localenv.AppIP, localenv.AppPort))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.Expect(p.Stdout, "request GET /detail")
	if code := p.Wait(); code != 0 {
		t.Errorf("probe exit %d", code)
	}
	// With the probe gone its subscription ends (a program started again
	// subscribes anew); the delivery stays counted.
	var last Detail
	err = poll.Until(t.Context(), 20*time.Second, func() error {
		last = h.detail(t)
		if len(last.Subscriptions) != 0 {
			return fmt.Errorf("%d subscriptions", len(last.Subscriptions))
		}
		return nil
	})
	if err != nil {
		t.Errorf("subscriptions %+v after the probe exited, want none: %v", last.Subscriptions, err)
	}
	if last.Counters["delivered"] != 1 {
		t.Errorf("counters %v, want one delivery", last.Counters)
	}
	for _, proc := range last.Processes {
		if proc.PID == p.Cmd.Process.Pid {
			t.Errorf("the probe has exited but is still listed: %+v", proc)
		}
	}
}

// startAgent runs an agent for the app pod that the test and a host share.
func startAgent(t *testing.T, env *localenv.Env) (string, *exec.Cmd) {
	t.Helper()
	addr := "unix:" + filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command(built(t, "remocal"), "agent", "--target-pid", fmt.Sprint(env.App.PID), "--listen", addr,
		"--idle-ttl", "0", "--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	log := &syncbuf.Buffer{}
	cmd.Stderr = lineWriter(log.Line)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		t.Logf("agent output:\n%s", log)
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "remocal-agent listening on ") {
		t.Fatalf("agent did not start: %q %v\n%s", line, err, log)
	}
	go io.Copy(io.Discard, stdout)
	return addr, cmd
}

type lineWriter func(string)

func (w lineWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w(l)
	}
	return len(p), nil
}

// A port another user steals already: the session reports a conflict
// naming them, and with onConflict continue the program still listens
// locally.
func TestConflictEvent(t *testing.T) {
	env := envtest.New(t)
	addr, bobSub := agentWithStolenAppPort(t, env, "bob@desk")

	spec := appSpec(t, env, "s1")
	spec.Config.Agent.Address = addr
	spec.Config.Network.Incoming.OnConflict = config.ConflictContinue
	spec.Incoming = "steal"
	h := startHost(t, spec)
	if h.Ready().Incoming != "steal" {
		t.Errorf("effective incoming %q, want steal", h.Ready().Incoming)
	}
	p := start(t, programEnv(h.Ready()), joinArgv(t, h.spec.Socket, nil, built(t, "probe"), "listen=:8080", "wait")...)
	ev := h.events.wait(t, daemon.EventConflict)
	c := ev.Conflict
	if c == nil || c.Holder == nil || c.Holder.Client != "bob@desk" || c.Port != localenv.AppPort || c.Mode != wire.ModeSteal ||
		c.SessionID != "s1" || c.Target != spec.Target {
		t.Errorf("conflict event %+v (conflict %+v), want bob@desk holding port 8080", ev, c)
	}
	if c != nil && c.Holder != nil && c.Holder.Subscription != bobSub {
		t.Errorf("holder's subscription %q, want %q", c.Holder.Subscription, bobSub)
	}
	mustContain(t, "conflict message", ev.Message, "cannot steal port 8080", "bob@desk")
	p.Expect(p.Stdout, "listening :8080") // the program goes on locally
	d := h.detail(t)
	if len(d.Subscriptions) != 0 || len(d.Errors) != 1 || d.Errors[0] != ev.Message {
		t.Errorf("detail: subscriptions %+v, errors %q; want none and the conflict", d.Subscriptions, d.Errors)
	}
	p.Stdin.Close()
	if code := p.Wait(); code != 0 {
		t.Errorf("probe exit %d", code)
	}
}

// The agent goes away: the session says so (no program has joined yet, so
// no supervisor could), and goes on for the programs that run locally.
func TestAgentLost(t *testing.T) {
	env := envtest.New(t)
	addr, agent := startAgent(t, env)
	spec := appSpec(t, env, "s1")
	spec.Config.Agent.Address = addr
	h := startHost(t, spec)
	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	ev := h.events.wait(t, daemon.EventAgentLost)
	mustContain(t, "agent_lost message", ev.Message, "lost the connection to the agent")
	d := h.detail(t)
	if len(d.Errors) != 1 || d.Errors[0] != ev.Message {
		t.Errorf("errors %q, want the lost agent", d.Errors)
	}
	if n := len(h.events.all()); n != 1 {
		t.Errorf("%d events, want one: %+v", n, h.events.all())
	}
	if h.Err() != nil {
		t.Errorf("Err() = %v: the host keeps running", h.Err())
	}
}

// A host killed with SIGKILL: the daemon side learns why, programs that
// joined carry on under their keeper, the agent it started goes, and
// another session is unaffected.
func TestKilledHost(t *testing.T) {
	env := envtest.New(t)
	a := startHost(t, appSpec(t, env, "a"))
	b := startHost(t, appSpec(t, env, "b"))
	p := start(t, programEnv(a.Ready()), joinArgv(t, a.spec.Socket, nil, built(t, "probe"),
		"read="+localenv.AppConfigPath, "wait", "stat=/etc/passwd", "hostname")...)
	p.Expect(p.Stdout, `"environment": "remote"`)
	p.Expect(p.Stdout, "waiting")
	var agents []int
	kids := children(a.PID())
	exits := map[int]<-chan struct{}{}
	for pid, cmdline := range kids {
		if strings.Contains(cmdline, " agent ") {
			agents = append(agents, pid)
			exits[pid] = watchExit(t, pid)
		}
	}
	if len(agents) != 1 {
		t.Fatalf("host a's children %v: want one agent", kids)
	}

	if err := syscall.Kill(a.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("Done not closed after the host was killed")
	}
	if err := a.Err(); err == nil || !strings.Contains(err.Error(), "killed by signal 9") {
		t.Errorf("Err() = %v, want killed by signal 9", err)
	}
	if _, err := os.Stat(a.spec.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead host's socket: %v, want it removed", err)
	}
	// The agent is shared by every session on the target (see
	// interpose/connect) and outlives this one: it exits after its idle
	// TTL or with its target.
	waitExit(t, "the dead host's other children", withoutAgents(kids), exits)
	if _, err := a.Detail(context.Background()); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Detail of a dead host: %v", err)
	}

	// The program goes on with this machine's files.
	p.Stdin.Write([]byte("\n"))
	p.Expect(p.Stdout, "stat /etc/passwd: size=")
	localHost, _ := os.Hostname()
	p.Expect(p.Stdout, "hostname "+localHost)
	if code := p.Wait(); code != 0 {
		t.Errorf("the program exited %d after its session host died, want 0", code)
	}

	// The other session runs on.
	r := run(t, programEnv(b.Ready()), debianPython(t), "-c", joinScript)
	if r.Code != 0 {
		t.Fatalf("python in session b: exit %d", r.Code)
	}
	mustContain(t, "python output", r.Stdout, "file remote", "resolve "+localenv.RedisIP.String())
	if d := b.detail(t); d.Supervised != 1 || b.Err() != nil {
		t.Errorf("session b: %d programs, Err %v", d.Supervised, b.Err())
	}
}

// Stop closes the session and leaves nothing behind.
func TestStop(t *testing.T) {
	env := envtest.New(t)
	h := startHost(t, appSpec(t, env, "s1"))
	r := run(t, programEnv(h.Ready()), joinArgv(t, h.spec.Socket, nil, built(t, "probe"), "read="+localenv.AppConfigPath)...)
	if r.Code != 0 {
		t.Fatalf("probe exit %d", r.Code)
	}
	kids := children(h.PID()) // the agent and the program's keeper
	exits := map[int]<-chan struct{}{}
	for pid := range kids {
		exits[pid] = watchExit(t, pid)
	}
	if len(kids) < 2 {
		t.Errorf("host children %v, want the agent and a keeper", kids)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-h.Done():
	default:
		t.Error("Done not closed after Stop returned")
	}
	if err := h.Err(); err != nil {
		t.Errorf("Err() = %v after a requested stop, want nil", err)
	}
	if _, err := os.Stat(h.spec.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after stop: %v, want it gone", err)
	}
	waitExit(t, "after Stop", withoutAgents(kids), exits)
	if err := h.Stop(ctx); err != nil {
		t.Errorf("a second Stop: %v", err)
	}
}

// If the daemon goes away, the host closes its session and exits.
func TestHostExitsWithoutDaemon(t *testing.T) {
	env := envtest.New(t)
	h := startHost(t, appSpec(t, env, "s1"))
	kids := children(h.PID())
	exits := map[int]<-chan struct{}{}
	for pid := range kids {
		exits[pid] = watchExit(t, pid)
	}
	// What the daemon's death does to the control connection.
	h.conn.Close()
	select {
	case <-h.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the host did not exit when its daemon went away")
	}
	if st := h.cmd.ProcessState; st == nil || st.ExitCode() != 0 {
		t.Errorf("host exit %v, want 0: it closed the session", st)
	}
	if _, err := os.Stat(h.spec.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket: %v, want it gone", err)
	}
	waitExit(t, "the host's children", withoutAgents(kids), exits)
}

// Start fails with a clear error and leaves no process behind.
func TestStartErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		modify func(*Spec)
		code   int
		want   string
	}{
		{"no such target", func(s *Spec) { s.Target = "pid/999999999" }, daemon.CodeTargetNotFound, "target pid/999999999: no such process"},
		{"unreachable agent", func(s *Spec) { s.Config.Agent.Address = "unix:/nonexistent/agent.sock" }, daemon.CodeAgent,
			"cannot reach the agent at unix:/nonexistent/agent.sock"},
		{"bad incoming", func(s *Spec) { s.Incoming = "sideways" }, daemon.CodeInvalidConfig, `incoming "sideways" is not mirror, steal or off`},
		{"bad config", func(s *Spec) { s.Config.FS.Mode = "write" }, daemon.CodeInvalidConfig, "$.fs.mode"},
		// Messages that once fooled the daemon's word search: both say
		// "config", neither is the configuration's fault.
		{"kubeconfig that does not load", func(s *Spec) {
			s.Target = "deployment/api"
			s.Config.Kubernetes.Kubeconfig = "/nonexistent/kubeconfig"
		}, daemon.CodeAgent, "/nonexistent/kubeconfig"},
		{"unreachable agent under a config directory", func(s *Spec) { s.Config.Agent.Address = "unix:/nonexistent/config/agent.sock" },
			daemon.CodeAgent, "cannot reach the agent at unix:/nonexistent/config/agent.sock"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			spec := Spec{ID: "bad", Target: "pid/1", Socket: filepath.Join(dir, "s.sock"), LibraryDir: dir,
				Config: &config.Config{}}
			c.modify(&spec)
			before := children(os.Getpid())
			log := &syncbuf.Buffer{}
			spec.Log = log.Line
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			h, err := Start(ctx, built(t, "remocal"), spec, nil)
			if err == nil {
				h.Stop(ctx)
				t.Fatal("started")
			}
			var de *daemon.Error
			if !errors.As(err, &de) || de.Code != c.code || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v (%T), want code %d and %q", err, err, c.code, c.want)
			}
			for pid, cmdline := range children(os.Getpid()) {
				if _, ok := before[pid]; !ok {
					t.Errorf("process %d (%s) left behind", pid, cmdline)
				}
			}
			if _, err := os.Stat(spec.Socket); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("socket: %v, want none", err)
			}
			t.Logf("host output:\n%s", log)
		})
	}
}

// Run by hand, the host explains itself and leaves the descriptors it did
// not get alone.
func TestHostByHand(t *testing.T) {
	r := run(t, os.Environ(), built(t, "remocal"), Arg)
	if r.Code != 2 || !strings.Contains(r.Stderr, "started by the remocal daemon") {
		t.Errorf("exit %d, stderr %q; want 2 and an explanation", r.Code, r.Stderr)
	}
}

// withoutAgents drops shared agents, which outlive the session that
// started them.
func withoutAgents[V any](kids map[int]V) map[int]V {
	out := map[int]V{}
	for pid, v := range kids {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !strings.Contains(string(cmdline), "agent\x00--target-pid") {
			out[pid] = v
		}
	}
	return out
}

// A target whose variables would make local programs load code from
// elsewhere: the session leaves them out, and Ready's warnings (what an
// IDE shows) say which and how to take one, as remocal exec does.
func TestReadyNamesVariablesKeptLocal(t *testing.T) {
	env := envtest.New(t)
	pod, err := env.StartApp(t.Context(), "toolchain", netip.MustParseAddr("10.77.0.22"), map[string]string{
		"PYTHONHOME": "/opt/target-python",
		"APP_MODE":   "remote",
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := appSpec(t, env, "kept")
	spec.Target = fmt.Sprintf("pid/%d", pod.PID)
	h := startHost(t, spec)
	ready := h.Ready()
	if ready.Env["APP_MODE"] != "remote" {
		t.Errorf("APP_MODE %q, want the target's", ready.Env["APP_MODE"])
	}
	if v, ok := ready.Env["PYTHONHOME"]; ok {
		t.Errorf("PYTHONHOME %q given to the program, want it left out", v)
	}
	want := `kept this machine's PYTHONHOME, not the target's`
	if !slices.ContainsFunc(ready.Warnings, func(w string) bool { return strings.Contains(w, want) && strings.Contains(w, "env.include") }) {
		t.Errorf("warnings %q, want one saying %q and how to take it", ready.Warnings, want)
	}
}
