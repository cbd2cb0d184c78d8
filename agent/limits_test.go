package agent_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/agentclient"
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

// TestHugeRemoteFileIsRefused: a file in the pod larger than the client's
// cap used to be read whole into the laptop's memory (a 20 GB file: out of
// memory); now ReadFile refuses it before reading, naming the fs setting
// that keeps the path local, while small files still read.
func TestHugeRemoteFileIsRefused(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	ctx := testCtx(t)

	// Sparse: the pod's disk holds none of it.
	const huge = "/etc/huge.bin"
	full := writeInTarget(t, env.App, huge, nil)
	if err := os.Truncate(full, agentclient.MaxFileSize+1); err != nil {
		t.Fatal(err)
	}
	data, err := c.ReadFile(ctx, huge)
	if err == nil {
		t.Fatalf("ReadFile of a %d MiB file returned %d MiB and no error", (agentclient.MaxFileSize+1)>>20, len(data)>>20)
	}
	var tooLarge *agentclient.FileTooLargeError
	if !errors.As(err, &tooLarge) || !errors.Is(err, agentclient.ErrFileTooLarge) || !errors.Is(err, unix.EFBIG) {
		t.Fatalf("ReadFile of a huge file: %v (%T), want a FileTooLargeError matching EFBIG", err, err)
	}
	if msg := err.Error(); !strings.Contains(msg, huge) || !strings.Contains(msg, `"fs": {"local": ["/etc/huge.bin"]}`) {
		t.Errorf("error %q does not name the file and the fs.local setting", msg)
	}

	// Files over one read but under the cap still arrive whole.
	want := bytes.Repeat([]byte("0123456789abcdef"), (wire.MaxReadSize+123)/16)
	writeInTarget(t, env.App, "/etc/big.bin", want)
	if got, err := c.ReadFile(ctx, "/etc/big.bin"); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadFile of a %d byte file: %d bytes, %v", len(want), len(got), err)
	}
}

// TestHugeDirectoryListingIsRefused: a listing is one frame held whole on
// both sides; a directory beyond the bound gets an error naming fs.local
// instead of an ever larger response.
func TestHugeDirectoryListingIsRefused(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	ctx := testCtx(t)

	const dir = "/etc/huge.d"
	full := fmt.Sprintf("/proc/%d/root%s", env.App.PID, dir)
	if err := os.Mkdir(full, 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 65536 + 1 // one over the agent's bound
	for i := range n {
		if err := os.Symlink("x", fmt.Sprintf("%s/%06d", full, i)); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := c.ReadDir(ctx, dir)
	if wire.CodeOf(err) != wire.CodeTooLarge || !strings.Contains(err.Error(), `"fs": {"local": ["/etc/huge.d"]}`) {
		t.Fatalf("ReadDir of %d entries: %d entries, %v; want too_large naming fs.local", n, len(entries), err)
	}
	if err := os.Remove(fmt.Sprintf("%s/%06d", full, n-1)); err != nil {
		t.Fatal(err)
	}
	if entries, err := c.ReadDir(ctx, dir); err != nil || len(entries) != n-1 {
		t.Fatalf("ReadDir at the bound: %d entries, %v", len(entries), err)
	}
}
