package agent_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/procwatch"
)

// node is Node's binary from test/setup/node.sh, which installs Node 24
// once (cached outside the checkout) for the VS Code extension's tests.
func node(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("../test/setup/node.sh").Output()
	if err != nil {
		t.Fatalf("test/setup/node.sh: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return filepath.Join(lines[len(lines)-1], "node")
}

// startNodeH2C runs testdata/h2c-server.js named name on port, in the
// network namespace of pid (0: this one, on loopback), and returns its
// address.
func startNodeH2C(t *testing.T, name string, pid int, port int) string {
	t.Helper()
	script, err := filepath.Abs("testdata/h2c-server.js")
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{node(t), script, name, fmt.Sprint(port), "127.0.0.1"}
	if pid != 0 {
		argv = append([]string{"nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", pid)}, argv[:4]...)
	}
	p := procwatch.Start(t, exec.Command(argv[0], argv[1:]...))
	line := p.Expect(p.Stdout, "listening on ")
	return net.JoinHostPort("127.0.0.1", strings.TrimPrefix(line, "listening on "))
}

// The HTTP/2 servers of TestH2CStealPerStream in Node instead of Go: the
// target's application and the developer's local server are Node's http2
// module (h2c), and a caller's streams on one connection go to each by
// header, bodies and trailers intact.
func TestH2CStealPerStreamWithNodeServers(t *testing.T) {
	const port = 9093
	env := envtest.New(t)
	startNodeH2C(t, "app-node", env.App.PID, port)
	local := startNodeH2C(t, "local-node", 0, 0)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	subscribe(t, c, wire.Subscribe{Port: port, Mode: wire.ModeSteal, Filter: userFilter("alice")}, agentclient.ForwardTo(local))

	tr := &http.Transport{Protocols: h2cProtocols(false), DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return env.Dial(ctx, env.Peer, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	for _, tc := range []struct{ user, body, want string }{
		{"alice", "a", "local-node HTTP/2.0 /x a\n"},
		{"", "", "app-node HTTP/2.0 /x \n"},
		{"bob", "b", "app-node HTTP/2.0 /x b\n"},
		{"alice", strings.Repeat("z", 200<<10), "local-node HTTP/2.0 /x " + strings.Repeat("z", 200<<10) + "\n"},
	} {
		req, _ := http.NewRequestWithContext(testCtx(t), "POST", fmt.Sprintf("http://%s:%d/x", localenv.AppIP, port), strings.NewReader(tc.body))
		if tc.user != "" {
			req.Header.Set("X-User", tc.user)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("user %q: %v", tc.user, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		by := strings.Fields(tc.want)[0]
		if string(body) != tc.want || resp.Header.Get("X-Served-By") != by || resp.Trailer.Get("X-Served-By-Trailer") != by {
			t.Errorf("user %q: %s %q (header %q, trailer %q); want %.60q from %s", tc.user, resp.Proto, body[:min(len(body), 60)],
				resp.Header.Get("X-Served-By"), resp.Trailer.Get("X-Served-By-Trailer"), tc.want, by)
		}
	}
}
