package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/test/poll"
)

// stdioClient drives `remocal daemon --stdio` the way an IDE does.
type stdioClient struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startForwarder(t *testing.T, bin, socket string, extra ...string) *stdioClient {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"daemon", "--stdio", "--socket", socket}, extra...)...)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if errb.Len() > 0 {
			t.Logf("forwarder stderr: %s", errb.String())
		}
	})
	return &stdioClient{cmd: cmd, in: in, out: bufio.NewReader(out)}
}

func (s *stdioClient) send(body string) {
	fmt.Fprintf(s.in, "Content-Length: %d\r\n\r\n%s", len(body), body)
}

func (s *stdioClient) read(t *testing.T) string {
	t.Helper()
	length := -1
	for {
		line, err := s.out.ReadString('\n')
		if err != nil {
			t.Fatalf("forwarder output ended: %v", err)
		}
		if line = strings.TrimSpace(line); line == "" {
			break
		}
		fmt.Sscanf(line, "Content-Length: %d", &length)
	}
	buf := make([]byte, length)
	io.ReadFull(s.out, buf)
	return string(buf)
}

func (s *stdioClient) call(t *testing.T, id int, method, params string) string {
	t.Helper()
	s.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, params))
	for {
		if reply := s.read(t); strings.Contains(reply, fmt.Sprintf(`"id":%d`, id)) {
			return reply
		}
	}
}

func waitExit(t *testing.T, pid int, what string) {
	t.Helper()
	// Not our child: nothing to wait on but the pid going away.
	if err := poll.Until(t.Context(), 20*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("%s (pid %d) did not exit", what, pid)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func daemonPID(t *testing.T, reply string) int {
	var pid int
	i := strings.Index(reply, `"pid":`)
	if i < 0 {
		t.Fatalf("no pid in %s", reply)
	}
	fmt.Sscanf(reply[i+6:], "%d", &pid)
	return pid
}

func TestForwarderStartsTheDaemonWhichExitsWhenIdle(t *testing.T) {
	bin := binary(t, testVersion)
	socket := filepath.Join(shortTempDir(t), "d.sock")
	f := startForwarder(t, bin, socket, "--idle-timeout", "300ms")
	reply := f.call(t, 1, "initialize", `{"capabilities":{}}`)
	if !strings.Contains(reply, `"version":"`+testVersion+`"`) {
		t.Fatalf("initialize through the forwarder: %s", reply)
	}
	pid := daemonPID(t, f.call(t, 2, daemon.MethodDaemonInfo, `null`))
	// A second forwarder attaches to the same daemon.
	g := startForwarder(t, bin, socket)
	g.call(t, 1, "initialize", `{"capabilities":{}}`)
	if other := daemonPID(t, g.call(t, 2, daemon.MethodDaemonInfo, `null`)); other != pid {
		t.Errorf("second forwarder reached daemon %d, want the shared %d", other, pid)
	}
	// IDEs close; the forwarders end; the idle daemon exits on its own.
	f.in.Close()
	g.in.Close()
	if err := f.cmd.Wait(); err != nil {
		t.Errorf("forwarder exit: %v", err)
	}
	g.cmd.Wait()
	waitExit(t, pid, "idle daemon")
}

func TestForwarderReplacesAnOlderIdleDaemon(t *testing.T) {
	old := binary(t, "0.0.1-old")
	socket := filepath.Join(shortTempDir(t), "d.sock")
	oldDaemon := exec.Command(old, "daemon", "--socket", socket, "--idle-timeout", "0")
	if err := oldDaemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { oldDaemon.Process.Kill(); oldDaemon.Wait() }()
	waitForSocket(t, socket)
	f := startForwarder(t, binary(t, testVersion), socket, "--idle-timeout", "300ms")
	reply := f.call(t, 1, "initialize", `{"capabilities":{}}`)
	if !strings.Contains(reply, testVersion) {
		t.Fatalf("the forwarder must reach a daemon of its own version: %s", reply)
	}
	if err := oldDaemon.Wait(); err != nil {
		t.Errorf("old daemon exit: %v", err)
	}
	f.in.Close()
	f.cmd.Wait()
	pid := daemonPIDFromSocket(t, socket)
	if pid != 0 {
		waitExit(t, pid, "new daemon")
	}
}

func TestForwarderKeepsAnOlderDaemonWithSessions(t *testing.T) {
	d := startDaemon(t, daemonOpts{}) // in-process, version testVersion
	// A session needs a target: this test process will do.
	folder := t.TempDir()
	c := connect(t, d.socket, defaultClient())
	startSession(t, c, daemon.SessionStartParams{Target: fmt.Sprintf("pid/%d", syscall.Getpid()), WorkspaceFolder: folder})
	other := exec.Command(binary(t, "0.0.2-other"), "daemon", "--stdio", "--socket", d.socket)
	out, err := other.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "remocal daemon "+testVersion) || !strings.Contains(string(out), "running 1 session") {
		t.Errorf("forwarder of another version: %v\n%s", err, out)
	}
}

func waitForSocket(t *testing.T, socket string) {
	t.Helper()
	// The other process starts on its own time and says nothing.
	if err := poll.Until(t.Context(), 20*time.Second, func() error {
		c, err := netDialUnix(socket)
		if err != nil {
			return fmt.Errorf("nothing listens on %s: %w", socket, err)
		}
		c.Close()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func daemonPIDFromSocket(t *testing.T, socket string) int {
	c, err := netDialUnix(socket)
	if err != nil {
		return 0
	}
	c.Close()
	cl := connect(t, socket, defaultClient())
	var info daemon.DaemonInfo
	cl.Call(testCtx(t), daemon.MethodDaemonInfo, nil, &info)
	cl.Close()
	return info.PID
}

// TestCommandLine covers the script-facing commands, which start the daemon
// themselves.
func TestCommandLine(t *testing.T) {
	bin := binary(t, testVersion)
	socket := filepath.Join(shortTempDir(t), "d.sock")
	out, err := exec.Command(bin, "rpc", "--socket", socket, daemon.MethodSessionList).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"sessions": []`) {
		t.Fatalf("remocal rpc: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "sessions", "--socket", socket).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ID") {
		t.Errorf("remocal sessions: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "rpc", "--socket", socket, "remocal/nope").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown method "remocal/nope"`) {
		t.Errorf("unknown method from the command line: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "rpc", "--socket", socket, daemon.MethodDaemonShutdown).CombinedOutput()
	if err != nil {
		t.Errorf("shutdown: %v\n%s", err, out)
	}
}
