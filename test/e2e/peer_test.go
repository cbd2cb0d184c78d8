package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/procwatch"
)

// peerProgram is a server that prints "peer from=ADDR ... local=ADDR" per
// connection and closes its listener at a line on stdin.
type peerProgram struct {
	name string
	argv func(t *testing.T) []string
	// blocked, if set, runs once the program printed "serving".
	blocked func(t *testing.T, r *procwatch.Proc, serving string)
}

var peerPrograms = []peerProgram{
	{"go", func(t *testing.T) []string { return []string{built(t, "probe"), "serve-peer=:8080"} }, nil},
	{"python", func(t *testing.T) []string {
		if _, err := os.Stat("/usr/bin/python3"); err != nil {
			t.Skip("no /usr/bin/python3 (Debian's python3)")
		}
		src, _ := filepath.Abs("testdata/peer/peer.py")
		return []string{"/usr/bin/python3", src, "8080"}
	}, nil},
	{"static-c", func(t *testing.T) []string { return buildC(t, "musl-gcc", "-static") }, signalWhileBlocked},
	{"glibc-c", func(t *testing.T) []string { return buildC(t, "gcc") }, signalWhileBlocked},
}

// buildC builds testdata/peer/peer.c with a C compiler: musl-gcc -static
// (musl-tools) or the system's gcc (glibc, dynamic).
func buildC(t *testing.T, compiler string, flags ...string) []string {
	cc, err := exec.LookPath(compiler)
	if err != nil {
		t.Skipf("no %s", compiler)
	}
	bin := filepath.Join(t.TempDir(), "peer")
	args := append(flags, "-O2", "-o", bin, "testdata/peer/peer.c")
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", compiler, err, out)
	}
	return []string{bin, "8080"}
}

// signalWhileBlocked sends SIGUSR1 to the C program once it waits in
// accept, where the supervisor holds the call: its SA_RESTART handler
// must run at once, and accept go on waiting.
func signalWhileBlocked(t *testing.T, r *procwatch.Proc, serving string) {
	pid, err := strconv.Atoi(strings.TrimPrefix(serving, "serving pid="))
	if err != nil {
		t.Fatalf("no pid in %q", serving)
	}
	err = poll.Until(context.Background(), 10*time.Second, func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		if err != nil || !(strings.HasPrefix(string(b), "43 ") || strings.HasPrefix(string(b), "288 ")) {
			return fmt.Errorf("not in accept: %q %v", b, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	r.Expect(r.Stdout, "signal handled")
}

// TestProgramSeesTheRealClient: a stolen connection's accept, getpeername
// and getsockname show the peer pod's address and the target's, as in the
// pod; closing the listener gives the port back to the target's
// application and to other sessions while the session goes on.
func TestProgramSeesTheRealClient(t *testing.T) {
	for _, p := range peerPrograms {
		t.Run(p.name, func(t *testing.T) {
			env := envtest.New(t)
			argv := p.argv(t)
			r := startExec(t, env, []string{"--steal"}, argv...)
			serving := r.Expect(r.Stdout, "serving")
			r.Expect(r.Stderr, "stealing port 8080 of the target")
			if p.blocked != nil {
				p.blocked(t, r, serving)
			}
			if body, by := peerGet(t, env, "/who", nil); by != "local-probe" {
				t.Fatalf("stolen request answered %q by %q, want the local program", body, by)
			}
			line := r.Expect(r.Stdout, "peer from=")
			for _, want := range []string{
				"from=" + localenv.PeerIP.String() + ":",
				fmt.Sprintf("local=%s:%d", localenv.AppIP, localenv.AppPort),
			} {
				if !strings.Contains(line, want) {
					t.Errorf("the program saw %q, want %q in it", line, want)
				}
			}
			if strings.Contains(line, "getpeername=") && !strings.Contains(line, "getpeername="+localenv.PeerIP.String()+":") {
				t.Errorf("getpeername in %q is not the peer pod", line)
			}

			io.WriteString(r.Stdin, "close\n")
			r.Expect(r.Stdout, "closed listener")
			r.Expect(r.Stderr, "closed its listener on port 8080")
			if _, by := peerGet(t, env, "/", nil); by != env.App.Hostname {
				t.Errorf("after the listener closed the target's application must answer, got %q", by)
			}
			// Another session can take the port while this one runs.
			other := startExec(t, env, []string{"--steal"}, built(t, "probe"), "serve=:8080")
			other.Expect(other.Stderr, "stealing port 8080 of the target")
			if _, by := peerGet(t, env, "/", http.Header{}); by != "local-probe" {
				t.Errorf("the second session's program must answer, got %q", by)
			}
			other.Wait()
			r.Stdin.Close()
			if code := r.Wait(); code != 0 {
				t.Errorf("exit %d", code)
			}
		})
	}
}

// TestOutgoingSocketShowsTheTargetsAddress: getsockname on a connection
// through the target reports the target's side of it, as in the pod. It
// is notified in sessions with incoming traffic (the default mirror).
func TestOutgoingSocketShowsTheTargetsAddress(t *testing.T) {
	env := envtest.New(t)
	dest := fmt.Sprintf("%s:%d", localenv.AppIP, localenv.AppPort)
	r := startExec(t, env, nil, built(t, "probe"), "dial-addrs="+dest)
	line := r.Expect(r.Stdout, "dialled")
	mustContain(t, "the program's view of its connection", line, "local="+localenv.AppIP.String()+":", "remote="+dest)
	if code := r.Wait(); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestFilteredRequestSeesTheRealClient: a request routed by an HTTP filter
// reaches the program over a connection that shows its own peer.
func TestFilteredRequestSeesTheRealClient(t *testing.T) {
	env := envtest.New(t)
	cfg := filepath.Join(t.TempDir(), "filtered.json")
	os.WriteFile(cfg, []byte(`{"network": {"incoming": {"mode": "mirror", "httpFilter": {"headers": {"X-Remocal-User": "me"}}}}}`), 0o644)
	r := startExec(t, env, []string{"-f", cfg}, built(t, "probe"), "serve-peer=:8080")
	r.Expect(r.Stderr, `mirroring port 8080 of the target where header X-Remocal-User="me"`)
	if _, by := peerGet(t, env, "/", http.Header{"X-Remocal-User": {"me"}}); by != env.App.Hostname {
		t.Errorf("a mirrored request must be answered by the target, got %q", by)
	}
	line := r.Expect(r.Stdout, "peer from=")
	mustContain(t, "the program's view of the request", line,
		"from="+localenv.PeerIP.String()+":", fmt.Sprintf("local=%s:%d", localenv.AppIP, localenv.AppPort))
	r.Stdin.Close()
	r.Wait()
}
