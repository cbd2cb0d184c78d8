package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/gobuild"
)

// project is a workspace folder whose configuration reads the example
// app's config directory from the target.
func project(t *testing.T, extra string) string {
	folder := t.TempDir()
	writeConfig(t, folder, `{"fs": {"remote": ["/etc/inventory"]}`+extra+`}`)
	return folder
}

func startSession(t *testing.T, c *daemonclient.Client, p daemon.SessionStartParams) daemon.SessionStartResult {
	t.Helper()
	var res daemon.SessionStartResult
	if err := c.Call(testCtx(t), daemon.MethodSessionStart, p, &res); err != nil {
		t.Fatalf("session/start: %v", err)
	}
	return res
}

func sessionChanged(id string, state daemon.SessionState) func(daemonclient.Notification) bool {
	return func(n daemonclient.Notification) bool {
		var sc daemon.SessionChanged
		json.Unmarshal(n.Params, &sc)
		return sc.Session.ID == id && sc.Session.State == state
	}
}

func python(t *testing.T) string {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required (make test installs it)")
	}
	return p
}

// runIn runs argv with the session's environment added.
func runIn(t *testing.T, res daemon.SessionStartResult, argv ...string) string {
	t.Helper()
	if len(res.Wrapper) > 0 {
		argv = res.Wrapper
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = os.Environ()
	for k, v := range res.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
	return string(out)
}

func TestSessionSharedBetweenClients(t *testing.T) {
	env := envtest.New(t)
	d := startDaemon(t, daemonOpts{})
	folder := project(t, "")
	alice := connect(t, d.socket, daemonclient.Options{Name: "alice-ide", Folders: []string{folder}, WorkDoneProgress: true})
	bob := connect(t, d.socket, daemonclient.Options{Name: "bob-script"})
	py := python(t)

	res := startSession(t, alice, daemon.SessionStartParams{Target: fmt.Sprintf("pid/%d", env.App.PID), WorkspaceFolder: folder, // progress below
		Program: &daemon.Program{Path: py}, WorkDoneToken: "start-1"})
	id := res.Session.ID
	if res.Session.State != daemon.StateActive || res.Session.Incoming != "mirror" || !strings.HasPrefix(res.Session.Owner, "alice-ide") {
		t.Errorf("session = %+v", res.Session)
	}
	if res.Env["API_TOKEN"] != localenv.AppAPIToken || res.Env["LD_PRELOAD"] == "" || res.Env["REMOCAL_SESSION_SOCKET"] == "" || len(res.Wrapper) != 0 {
		t.Errorf("start result: env %v wrapper %v", res.Env, res.Wrapper)
	}
	waitNotification(t, alice, "$/progress", func(n daemonclient.Notification) bool {
		return strings.Contains(string(n.Params), `"token":"start-1"`) && strings.Contains(string(n.Params), `"kind":"end"`)
	})
	waitNotification(t, bob, daemon.NotifySessionChanged, sessionChanged(id, daemon.StateActive))

	out := runIn(t, res, py, "-c", "import socket; print(open('/etc/inventory/config.json').read()); print('redis', socket.gethostbyname('redis'))")
	if !strings.Contains(out, `"environment": "remote"`) || !strings.Contains(out, "redis "+localenv.RedisIP.String()) {
		t.Errorf("python in the session: %s", out)
	}

	var list daemon.SessionListResult
	if err := bob.Call(testCtx(t), daemon.MethodSessionList, nil, &list); err != nil || len(list.Sessions) != 1 || list.Sessions[0].ID != id {
		t.Fatalf("bob's list = %+v, %v", list, err)
	}
	var detail daemon.SessionDetail
	if err := bob.Call(testCtx(t), daemon.MethodSessionDetail, daemon.SessionParams{ID: id}, &detail); err != nil {
		t.Fatal(err)
	}
	if detail.Counters["open"] == 0 || detail.Counters["notified"] == 0 {
		t.Errorf("detail counters = %v", detail.Counters)
	}

	if err := bob.Call(testCtx(t), daemon.MethodSessionStop, daemon.SessionParams{ID: id}, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*daemonclient.Client{alice, bob} {
		waitNotification(t, c, daemon.NotifySessionChanged, sessionChanged(id, daemon.StateEnded))
	}
	if err := alice.Call(testCtx(t), daemon.MethodSessionList, nil, &list); err != nil || len(list.Sessions) != 0 {
		t.Errorf("after stop: %+v %v", list, err)
	}
}

func TestStaticProgramGetsAWrapper(t *testing.T) {
	env := envtest.New(t)
	d := startDaemon(t, daemonOpts{})
	c := connect(t, d.socket, daemonclient.Options{})
	// remocal itself is a static Go binary here: use its verify-config as
	// the program, reading the target's file.
	bin := binary(t, testVersion)
	static := gobuild.Program(t, gobuild.Probe, gobuild.Options{Static: true})
	res := startSession(t, c, daemon.SessionStartParams{Target: fmt.Sprintf("pid/%d", env.App.PID), WorkspaceFolder: project(t, ""),
		Program: &daemon.Program{Path: static, Args: []string{"read=/etc/inventory/config.json", "hostname"}}})
	if len(res.Wrapper) < 4 || res.Wrapper[0] != bin || res.Wrapper[1] != "exec" || res.Wrapper[2] != "--join" || res.Wrapper[len(res.Wrapper)-2] != "read=/etc/inventory/config.json" {
		t.Fatalf("wrapper = %v", res.Wrapper)
	}
	out := runIn(t, res)
	if !strings.Contains(out, `"environment": "remote"`) || !strings.Contains(out, "hostname "+env.App.Hostname) {
		t.Errorf("wrapped static program: %s", out)
	}
}

func TestSessionStartErrors(t *testing.T) {
	env := envtest.New(t)
	d := startDaemon(t, daemonOpts{})
	c := connect(t, d.socket, daemonclient.Options{})
	ctx := testCtx(t)

	bad := t.TempDir()
	writeConfig(t, bad, `{"network": {"incoming": {"mode": "copy"}}}`)
	err := c.Call(ctx, daemon.MethodSessionStart, daemon.SessionStartParams{Target: fmt.Sprintf("pid/%d", env.App.PID), WorkspaceFolder: bad}, nil)
	if rpcCode(err) != daemon.CodeInvalidConfig || !strings.Contains(err.Error(), "1 problem") {
		t.Errorf("bad config: %v", err)
	}
	err = c.Call(ctx, daemon.MethodSessionStart, daemon.SessionStartParams{Target: "pid/999999999", WorkspaceFolder: t.TempDir()}, nil)
	if rpcCode(err) != daemon.CodeTargetNotFound {
		t.Errorf("missing target: %v", err)
	}
	err = c.Call(ctx, daemon.MethodSessionStart, daemon.SessionStartParams{WorkspaceFolder: t.TempDir()}, nil)
	if rpcCode(err) != daemon.CodeInvalidParams || !strings.Contains(err.Error(), "no target") {
		t.Errorf("no target: %v", err)
	}
	err = c.Call(ctx, daemon.MethodSessionStart, daemon.SessionStartParams{Target: "pid/1", WorkspaceFolder: "relative"}, nil)
	if rpcCode(err) != daemon.CodeInvalidParams {
		t.Errorf("relative folder: %v", err)
	}
}

// Sessions on Kubernetes targets use the cluster the daemon was started
// with (remocal daemon --kubeconfig), the one it lists targets of, unless
// the workspace's configuration names a kubeconfig of its own.
func TestSessionUsesTheDaemonsKubeconfig(t *testing.T) {
	d := startDaemon(t, daemonOpts{kube: config.Kubernetes{Kubeconfig: "/nonexistent/daemons-kubeconfig"}})
	c := connect(t, d.socket, daemonclient.Options{})
	err := c.Call(testCtx(t), daemon.MethodSessionStart, daemon.SessionStartParams{Target: "deployment/api", WorkspaceFolder: t.TempDir()}, nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/daemons-kubeconfig") {
		t.Errorf("without a kubeconfig in the configuration: %v", err)
	}
	own := t.TempDir()
	writeConfig(t, own, `{"kubernetes": {"kubeconfig": "/nonexistent/projects-kubeconfig"}}`)
	err = c.Call(testCtx(t), daemon.MethodSessionStart, daemon.SessionStartParams{Target: "deployment/api", WorkspaceFolder: own}, nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/projects-kubeconfig") {
		t.Errorf("with the configuration's kubeconfig: %v", err)
	}
}

// hostPIDs lists session host processes started by this test process.
func hostPIDs(t *testing.T) []int {
	t.Helper()
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if !strings.Contains(string(cmdline), "__remocal-session-host") || len(stat) == 0 {
			continue
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(os.Getpid()) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestKilledSessionIsReportedAndOthersSurvive(t *testing.T) {
	env := envtest.New(t)
	d := startDaemon(t, daemonOpts{})
	c := connect(t, d.socket, daemonclient.Options{})
	target := fmt.Sprintf("pid/%d", env.App.PID)
	first := startSession(t, c, daemon.SessionStartParams{Target: target, WorkspaceFolder: project(t, "")})
	before := hostPIDs(t)
	second := startSession(t, c, daemon.SessionStartParams{Target: target, WorkspaceFolder: project(t, "")})
	var victim int
	for _, p := range hostPIDs(t) {
		if !contains(before, p) {
			victim = p
		}
	}
	if victim == 0 {
		t.Fatal("cannot find the second session's host process")
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n := waitNotification(t, c, daemon.NotifySessionChanged, sessionChanged(second.Session.ID, daemon.StateEnded))
	if !strings.Contains(string(n.Params), "process died") || !strings.Contains(string(n.Params), "signal 9") {
		t.Errorf("ended notification: %s", n.Params)
	}
	var detail daemon.SessionDetail
	if err := c.Call(testCtx(t), daemon.MethodSessionDetail, daemon.SessionParams{ID: first.Session.ID}, &detail); err != nil || detail.Session.State != daemon.StateActive {
		t.Errorf("the other session: %+v %v", detail.Session, err)
	}
}

func contains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func TestCancelSlowSessionStart(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	// An "agent" that accepts and never answers: the start waits on it.
	// (A unix socket of this user: a configuration file may name one, and
	// a TCP agent without a key is refused before the handshake.)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	folder := t.TempDir()
	writeConfig(t, folder, `{"agent": {"address": "unix:`+sock+`"}}`)
	raw := dialRaw(t, d.socket)
	raw.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}`)
	raw.read(t)
	raw.send(`{"jsonrpc":"2.0","id":2,"method":"remocal/session/start","params":{"target":"pid/1","workspaceFolder":"` + folder + `"}}`)
	// The request is in progress (the handshake with the silent agent
	// waits); the connection still serves other requests meanwhile.
	raw.send(`{"jsonrpc":"2.0","id":3,"method":"remocal/session/list"}`)
	for {
		reply := raw.read(t)
		if strings.Contains(reply, `"id":3`) {
			break
		}
	}
	raw.send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":2}}`)
	for {
		reply := raw.read(t)
		if reply == "" {
			t.Fatal("connection closed before the cancelled reply")
		}
		if strings.Contains(reply, `"id":2`) {
			if !strings.Contains(reply, `"code":-32800`) {
				t.Errorf("cancelled start replied %s", reply)
			}
			break
		}
	}
	if len(hostPIDs(t)) != 0 {
		t.Errorf("a cancelled start left a session host running: %v", hostPIDs(t))
	}
}

// TestConflictIsAnnounced: a session whose program listens on a port that
// another session already steals reports the conflict to every client and
// shows it to the user who started it.
func TestConflictIsAnnounced(t *testing.T) {
	env := envtest.New(t)
	d := startDaemon(t, daemonOpts{})
	alice := connect(t, d.socket, daemonclient.Options{Name: "alice-ide"})
	watcher := connect(t, d.socket, daemonclient.Options{Name: "watcher"})
	target := fmt.Sprintf("pid/%d", env.App.PID)
	probe := gobuild.Program(t, gobuild.Probe, gobuild.Options{Static: true})
	join := func(res daemon.SessionStartResult, args ...string) *exec.Cmd {
		cmd := exec.Command(binary(t, testVersion), append([]string{"exec", "--join", res.Env["REMOCAL_SESSION_SOCKET"], "--", probe}, args...)...)
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
		// "listening" is printed once listen(2) returned, that is after the
		// subscription was attempted.
		sc := bufio.NewScanner(out)
		for sc.Scan() && !strings.Contains(sc.Text(), "listening") {
		}
		return cmd
	}
	holder := startSession(t, alice, daemon.SessionStartParams{Target: target, WorkspaceFolder: project(t, ""), Incoming: "steal"})
	join(holder, "listen=:8080", "wait")
	// The second session's program listens on 8081, mapped to the
	// target's 8080, which the first session holds.
	second := startSession(t, alice, daemon.SessionStartParams{Target: target, Incoming: "steal",
		WorkspaceFolder: project(t, `, "network": {"incoming": {"portMapping": {"8081": 8080}, "onConflict": "continue"}}`)})
	join(second, "listen=:8081", "wait")

	n := waitNotification(t, watcher, daemon.NotifyConflict, nil)
	var cf daemon.Conflict
	json.Unmarshal(n.Params, &cf)
	if cf.SessionID != second.Session.ID || cf.Port != 8080 || cf.Holder == nil || !strings.HasPrefix(cf.Holder.Client, "alice-ide") {
		t.Errorf("conflict = %+v", cf)
	}
	waitNotification(t, watcher, daemon.NotifySessionChanged, sessionChanged(second.Session.ID, daemon.StateDegraded))
	waitNotification(t, alice, "window/showMessage", func(n daemonclient.Notification) bool {
		return strings.Contains(string(n.Params), "already stolen")
	})
}
