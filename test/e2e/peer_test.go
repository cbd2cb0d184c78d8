package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
)

// peerProgram is a server that prints "peer from=ADDR ... local=ADDR" per
// connection and closes its listener at a line on stdin.
type peerProgram struct {
	name string
	argv func(t *testing.T) []string
}

var peerPrograms = []peerProgram{
	{"go", func(t *testing.T) []string { return []string{built(t, "probe"), "serve-peer=:8080"} }},
	{"python", func(t *testing.T) []string {
		if _, err := os.Stat("/usr/bin/python3"); err != nil {
			t.Skip("no /usr/bin/python3 (Debian's python3)")
		}
		src, _ := filepath.Abs("testdata/peer/peer.py")
		return []string{"/usr/bin/python3", src, "8080"}
	}},
	{"static-c", func(t *testing.T) []string {
		cc, err := exec.LookPath("musl-gcc")
		if err != nil {
			t.Skip("no musl-gcc (Debian's musl-tools)")
		}
		bin := filepath.Join(t.TempDir(), "peer")
		if out, err := exec.Command(cc, "-static", "-O2", "-o", bin, "testdata/peer/peer.c").CombinedOutput(); err != nil {
			t.Fatalf("musl-gcc: %v\n%s", err, out)
		}
		return []string{bin, "8080"}
	}},
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
			r.Expect(r.Stderr, "stealing port 8080 of the target")
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
