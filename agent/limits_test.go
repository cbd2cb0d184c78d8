package agent_test

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
)

// TestEndlessRequestHeadIsCutOff: on a port with a filtered steal the agent
// reads each request head to route it. A peer (an Ingress, say) sending a
// head that never ends used to be read into the agent's memory whole; now
// the agent answers 431 at 1 MiB and closes, and ordinary requests, stolen
// or not, keep working.
func TestEndlessRequestHeadIsCutOff(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	local := newLocalServer(t, "alice")
	subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal,
		Filter: &wire.HTTPFilter{Headers: map[string]string{"X-Remocal-User": "alice"}}}, local.forwarder())

	conn, err := env.Dial(testCtx(t), env.Peer, "tcp", fmt.Sprintf("%s:%d", localenv.AppIP, localenv.AppPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(conn).ReadString('\n')
		answer <- line
	}()
	const endless = 64 << 20
	sent := 0
	io.WriteString(conn, "GET /items HTTP/1.1\r\nHost: app\r\nX-Endless: ")
	chunk := strings.Repeat("a", 64<<10)
	for sent < endless {
		n, err := io.WriteString(conn, chunk)
		sent += n
		if err != nil {
			break
		}
	}
	if sent >= endless {
		t.Errorf("the agent read all %d MiB of an endless request head", endless>>20)
	}
	if line := <-answer; !strings.HasPrefix(line, "HTTP/1.1 431 ") {
		t.Errorf("answer to an endless head: %q, want 431 Request Header Fields Too Large", line)
	}
	t.Logf("the connection ended after %d KiB of head", sent>>10)

	assertFromApp(t, env, "/items", nil)
	assertFromLocal(t, env, "/items", hdr("X-Remocal-User", "alice"), "alice")
}
