package agent_test

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remocal/remocal/internal/agentclient"
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

	if n := checkH2CStealByHeader(t, env, port, "local-node", "app-node"); n != 1 {
		t.Errorf("the client dialled %d connections, want every request on one", n)
	}
}
