package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
)

// peerGet sends a request from the peer pod to the target's port 8080.
func peerGet(t *testing.T, env *localenv.Env, path string, header http.Header) (body, servedBy string) {
	t.Helper()
	req, err := http.NewRequest("GET", fmt.Sprintf("http://%s:%d%s", localenv.AppIP, localenv.AppPort, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := env.HTTP(env.Peer).Do(req)
	if err != nil {
		t.Fatalf("GET %s from the peer: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), resp.Header.Get("X-Served-By")
}

func TestMirroredTrafficReachesTheProgram(t *testing.T) {
	env := envtest.New(t)
	r := startExec(t, env, nil, built(t, "probe"), "serve=:8080")
	r.Expect(r.Stderr, "mirroring port 8080 of the target to 127.0.0.1:8080")
	body, by := peerGet(t, env, "/", nil)
	if by != env.App.Hostname || !strings.Contains(body, localenv.AppGreeting) {
		t.Errorf("mirroring must leave the answer to the target; got %q from %q", body, by)
	}
	r.Expect(r.Stdout, "request GET /")
	if code := r.Wait(); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestStolenTrafficIsAnsweredByTheProgram(t *testing.T) {
	env := envtest.New(t)
	r := startExec(t, env, []string{"--steal"}, built(t, "probe"), "serve=:8080")
	r.Expect(r.Stderr, "stealing port 8080 of the target")
	body, by := peerGet(t, env, "/orders", nil)
	if by != "local-probe" || body != "local probe" {
		t.Errorf("stolen request answered %q by %q, want the local program", body, by)
	}
	r.Expect(r.Stdout, "request GET /orders")
	r.Wait()
	// The session is over: the target answers again.
	if _, by := peerGet(t, env, "/", nil); by != env.App.Hostname {
		t.Errorf("after the session the target must answer, got %q", by)
	}
}

func TestHTTPFilteredSteal(t *testing.T) {
	env := envtest.New(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "filtered.json")
	os.WriteFile(cfg, []byte(`{
  "fs": {"remote": ["/etc/inventory"]},
  "network": {"incoming": {"mode": "steal", "httpFilter": {"headers": {"X-Remocal-User": "me"}}}}
}`), 0o644)
	r := startExec(t, env, []string{"-f", cfg}, built(t, "probe"), "serve=:8080")
	r.Expect(r.Stderr, `stealing port 8080 of the target where header X-Remocal-User="me"`)
	if _, by := peerGet(t, env, "/", http.Header{"X-Remocal-User": {"someone-else"}}); by != env.App.Hostname {
		t.Errorf("an unmatched request must reach the target, went to %q", by)
	}
	if body, by := peerGet(t, env, "/mine", http.Header{"X-Remocal-User": {"me"}}); by != "local-probe" {
		t.Errorf("a matching request must reach the program, got %q from %q", body, by)
	}
	r.Expect(r.Stdout, "request GET /mine user=me")
	r.Wait()
}

// A debugger in the tree listens for its client; that port is the
// developer's, never the target's. Here a program named dlv (on the
// built-in list of local programs) listens on 2345 and starts the program
// being debugged, which listens on 8080.
func TestDebuggerPortsAreNotSubscribed(t *testing.T) {
	env := envtest.New(t)
	dlv := filepath.Join(t.TempDir(), "dlv")
	data, err := os.ReadFile(built(t, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dlv, data, 0o755); err != nil {
		t.Fatal(err)
	}
	r := startExec(t, env, nil, dlv, "listen=:2345", "run="+built(t, "probe")+"+serve=:8080")
	r.Expect(r.Stdout, "listening :2345")
	r.Expect(r.Stderr, "mirroring port 8080 of the target")
	peerGet(t, env, "/debuggee", nil)
	r.Expect(r.Stdout, "request GET /debuggee")
	r.Wait()
	for _, line := range r.Lines() {
		if strings.Contains(line, "port 2345") {
			t.Errorf("the debugger's port was subscribed: %s", line)
		}
	}
}

func TestGDBRunsTheProgramUnderTheLauncher(t *testing.T) {
	env := envtest.New(t)
	gdb := requireTool(t, "gdb")
	r := execIn(t, env, []string{"--no-incoming"}, gdb, "-batch", "-nx", "-ex", "run", "--args",
		built(t, "probe"), "env=API_TOKEN", "read="+localenv.AppConfigPath, "resolve=redis")
	if r.Code != 0 {
		t.Fatalf("gdb exit %d", r.Code)
	}
	mustContain(t, "gdb output", r.Stdout, "env API_TOKEN="+localenv.AppAPIToken, `"environment": "remote"`,
		"resolve redis: "+localenv.RedisIP.String(), "exited normally")
}

// TestPortMapping: the program listens on 9090, the target's port 8080 is
// what gets stolen.
func TestPortMapping(t *testing.T) {
	env := envtest.New(t)
	cfg := filepath.Join(t.TempDir(), "mapping.json")
	os.WriteFile(cfg, []byte(`{"network": {"incoming": {"mode": "steal", "portMapping": {"9090": 8080}}}}`), 0o644)
	r := startExec(t, env, []string{"-f", cfg}, built(t, "probe"), "serve=:9090")
	r.Expect(r.Stderr, "stealing port 8080 of the target to 127.0.0.1:9090")
	if body, by := peerGet(t, env, "/mapped", nil); by != "local-probe" {
		t.Errorf("request to the target's 8080 answered %q by %q, want the program on 9090", body, by)
	}
	r.Expect(r.Stdout, "request GET /mapped")
	r.Wait()
}

// A port another session steals: by default (onConflict abort) the second
// session ends naming the holder and its program's listen fails; with
// continue it runs without the port, saying so.
func TestConflictAbortsOrContinues(t *testing.T) {
	env := envtest.New(t)
	holder := startExec(t, env, []string{"--steal"}, built(t, "probe"), "serve=:8080")
	holder.Expect(holder.Stderr, "stealing port 8080 of the target")

	// The second program listens on 8081, mapped to the target's 8080
	// (both programs run on this machine).
	cfg := filepath.Join(t.TempDir(), "second.json")
	os.WriteFile(cfg, []byte(`{"network": {"incoming": {"mode": "steal", "portMapping": {"8081": 8080}}}}`), 0o644)
	r := execIn(t, env, []string{"-f", cfg}, built(t, "probe"), "serve=:8081")
	if r.Code == 0 {
		t.Errorf("onConflict abort: exit 0, want the session to fail")
	}
	mustContain(t, "abort", r.Stderr, "port 8080 of the target (the program's port 8081) is held by another session",
		"already stolen without a filter by", "onConflict: abort", `"continue"`)

	c := startExec(t, env, []string{"-f", cfg, "--on-conflict", "continue"}, built(t, "probe"), "listen=:8081", "wait")
	c.Expect(c.Stderr, "continuing without port 8080 (onConflict: continue)")
	c.Expect(c.Stdout, "listening :8081")
	// The holder still gets the target's traffic.
	if _, by := peerGet(t, env, "/still-mine", nil); by != "local-probe" {
		t.Errorf("the holder lost the port to a session that continued without it: answered by %q", by)
	}
	holder.Expect(holder.Stdout, "request GET /still-mine")
}
