package agent_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/agenttls"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/syncbuf"
)

var (
	agentKey = []byte("the-agent-key-its-creator-made-0123")
	wrongKey = []byte("a-key-someone-guessed-0123456789ab")
)

func dialWithKey(t *testing.T, addr string, key []byte, session string) (*agentclient.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := agentclient.Dial(ctx, addr, agentclient.Options{Name: "alice@laptop", Version: "test", Session: session, Key: key, Logger: testLogger(t)})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// A teammate who can reach the agent's port (pods/portforward) but does
// not hold its key is refused in the handshake and served nothing; the
// session that holds the key is served.
func TestAgentRefusesClientsWithoutItsKey(t *testing.T) {
	env := envtest.New(t)
	ta := startAgent(t, env.App, agentOptions{key: agentKey})

	t.Run("wrong key", func(t *testing.T) {
		_, err := dialWithKey(t, ta.addr, wrongKey, "")
		// The agent's proof does not check with the wrong key: the client
		// stops before proving anything.
		if !errors.Is(err, agentclient.ErrUnprovenAgent) {
			t.Fatalf("dial with a wrong key: %v; want ErrUnprovenAgent", err)
		}
	})
	t.Run("no key", func(t *testing.T) {
		_, err := dialWithKey(t, ta.addr, nil, "")
		if wire.CodeOf(err) != wire.CodePermissionDenied || !strings.Contains(err.Error(), "requires its key") {
			t.Fatalf("dial without a key: %v; want permission_denied", err)
		}
	})
	t.Run("hello without a challenge", func(t *testing.T) {
		conn := rawDial(t, ta.addr)
		wire.WritePreamble(conn)
		wire.WriteMessage(conn, 0, &wire.Hello{Protocol: wire.Version{Major: 1}, Client: wire.ClientInfo{Name: "old@client"}})
		if we := readRejection(t, conn); we.Code != wire.CodePermissionDenied || !strings.Contains(we.Message, "prove") {
			t.Errorf("rejection = %v", we)
		}
	})
	// An attacker who ignores the agent's proof, sends a made-up one and
	// goes on as if accepted: nothing of what follows is served.
	t.Run("forged proof then requests", func(t *testing.T) {
		conn := rawDial(t, ta.addr)
		wire.WritePreamble(conn)
		wire.WriteMessage(conn, 0, &wire.Hello{Protocol: wire.Current, Client: wire.ClientInfo{Name: "mallory"}, Nonce: wire.NewNonce()})
		if err := wire.ReadPreamble(conn); err != nil {
			t.Fatal(err)
		}
		if _, err := wire.ReadMessage[*wire.Welcome](conn, wire.MaxHandshakeFrameSize); err != nil {
			t.Fatal(err)
		}
		wire.WriteMessage(conn, 0, &wire.Auth{Proof: make([]byte, 32)})
		closed := make(chan struct{})
		// The multiplexer only writes: the test reads the agent's answer.
		if mux, err := yamux.Client(writeOnly{conn, closed}, wire.MuxConfig()); err == nil {
			if st, err := mux.OpenStream(); err == nil {
				wire.WriteMessage(st, 1, &wire.EnvGet{})
				wire.WriteMessage(st, 2, &wire.FileRead{Path: "/etc/hostname"})
			}
			if st, err := mux.OpenStream(); err == nil {
				wire.WriteMessage(st, 0, &wire.Dial{Network: "tcp", Address: "10.77.0.20:6379"})
			}
			defer func() {
				close(closed) // lets its reader end, which Close waits for
				mux.Close()
			}()
		}
		_, err := wire.ReadMessage[*wire.AuthResult](conn, wire.MaxHandshakeFrameSize)
		if wire.CodeOf(err) != wire.CodePermissionDenied {
			t.Fatalf("after a forged proof: %v; want permission_denied", err)
		}
	})

	// The attacks were counted as refused and nothing was served.
	if err := poll.Until(testCtx(t), 10*time.Second, func() error {
		if st := ta.agent.Stats(); st.Refused < 4 {
			return fmt.Errorf("refusals counted: %d", st.Refused)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if st := ta.agent.Stats(); st.Clients != 0 || st.Requests != 0 || st.Dials != 0 {
		t.Fatalf("the agent served clients without its key: %+v", st)
	}

	// The holder of the key is served.
	c, err := dialWithKey(t, ta.addr, agentKey, "")
	if err != nil {
		t.Fatal(err)
	}
	if !wire.HasCapability(c.Welcome().Capabilities, wire.CapAuth) {
		t.Errorf("welcome does not list %s: %v", wire.CapAuth, c.Welcome().Capabilities)
	}
	vars, err := c.Env(testCtx(t), []string{"PATH"}, nil)
	if err != nil || vars["PATH"] == "" {
		t.Fatalf("env with the key: %v %v", vars, err)
	}
	if st := ta.agent.Stats(); st.Clients != 1 || st.Requests != 1 {
		t.Errorf("stats after the legitimate client: %+v", st)
	}
}

// A connection that names another client's remocal session but cannot
// prove the key must not replace that client's connection (which would
// drop its subscriptions).
func TestUnauthenticatedConnectionDoesNotSupersede(t *testing.T) {
	env := envtest.New(t)
	ta := startAgent(t, env.App, agentOptions{key: agentKey})
	alice, err := dialWithKey(t, ta.addr, agentKey, "s-alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialWithKey(t, ta.addr, wrongKey, "s-alice"); err == nil {
		t.Fatal("a wrong key was accepted")
	}
	conn := rawDial(t, ta.addr)
	hello := &wire.Hello{Protocol: wire.Current, Client: wire.ClientInfo{Name: "mallory", Session: "s-alice"}, Nonce: wire.NewNonce()}
	wire.WritePreamble(conn)
	wire.WriteMessage(conn, 0, hello)
	wire.ReadPreamble(conn)
	wire.ReadMessage[*wire.Welcome](conn, wire.MaxHandshakeFrameSize)
	wire.WriteMessage(conn, 0, &wire.Auth{Proof: make([]byte, 32)})
	wire.ReadMessage[*wire.AuthResult](conn, wire.MaxHandshakeFrameSize)
	if err := alice.Ping(testCtx(t)); err != nil {
		t.Fatalf("alice's connection was dropped by an unauthenticated one: %v", err)
	}
}

// An agent listening on TCP needs a key, or --insecure; a client with the
// key reaches it, a client without one does not even connect.
func TestTCPAgentNeedsAKey(t *testing.T) {
	env := envtest.New(t)
	bin := remocalBinary(t)

	out, err := runAgentCommand(t, bin, "--target-pid", fmt.Sprint(env.App.PID), "--listen", "tcp:127.0.0.1:0")
	if err == nil || !strings.Contains(out, "--insecure") || !strings.Contains(out, "--secret-file") {
		t.Fatalf("agent on TCP without a key: %v\n%s", err, out)
	}

	_, addr := agentProcess(t, env.App.PID, "--listen", "tcp:127.0.0.1:0", "--insecure")
	ctx := testCtx(t)
	if _, err := agentclient.Dial(ctx, addr, agentclient.Options{Name: "alice"}); !errors.Is(err, agentclient.ErrNoKey) {
		t.Fatalf("client without a key or --agent-insecure dialled %s: %v", addr, err)
	}
	c, err := agentclient.Dial(ctx, addr, agentclient.Options{Name: "alice", Unauthenticated: true})
	if err != nil {
		t.Fatalf("--insecure agent with an insecure client: %v", err)
	}
	c.Close()
	// A client that holds a key refuses an agent that proves none.
	if _, err := agentclient.Dial(ctx, addr, agentclient.Options{Name: "alice", Key: agentKey}); !errors.Is(err, agentclient.ErrUnprovenAgent) {
		t.Fatalf("client with a key accepted an agent without one: %v", err)
	}

	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, append(agentKey, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	_, addr = agentProcess(t, env.App.PID, "--listen", "tcp:127.0.0.1:0", "--secret-file", keyFile)
	c, err = agentclient.Dial(ctx, addr, agentclient.Options{Name: "alice", Key: agentKey})
	if err != nil {
		t.Fatalf("client with the key: %v", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := agentclient.Dial(ctx, addr, agentclient.Options{Name: "alice", Unauthenticated: true}); wire.CodeOf(err) != wire.CodePermissionDenied {
		t.Fatalf("client without the key: %v", err)
	}
}

func runAgentCommand(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	var out syncbuf.Buffer
	cmd := exec.Command(bin, append([]string{"agent"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// writeOnly hides a connection's reads from a yamux session, whose reader
// would otherwise take the agent's answer from the test.
type writeOnly struct {
	net.Conn
	closed chan struct{}
}

// Close leaves the connection to the test: yamux closes it on a write error.
func (w writeOnly) Close() error { return nil }

func (w writeOnly) Read(p []byte) (int, error) {
	<-w.closed
	return 0, io.EOF
}

// An agent with --tls-cert-file serves TLS on TCP, the key proof inside:
// a client pinning its certificate reaches it, a client pinning another
// certificate sends nothing past the TLS handshake, and a plain client
// gets no remocal answer.
func TestTCPAgentOverTLS(t *testing.T) {
	env := envtest.New(t)
	dir := t.TempDir()
	cert, key, err := agenttls.New("agent-test")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := agenttls.New("another-agent")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"key": agentKey, "tls.crt": cert, "tls.key": key}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, addr := agentProcess(t, env.App.PID, "--listen", "tcp:127.0.0.1:0", "--secret-file", filepath.Join(dir, "key"),
		"--tls-cert-file", filepath.Join(dir, "tls.crt"), "--tls-key-file", filepath.Join(dir, "tls.key"))
	ctx := testCtx(t)
	pinned, err := agenttls.PinnedConfig(cert)
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentclient.Dial(ctx, addr, agentclient.Options{Name: "operator", Key: agentKey, TLS: pinned})
	if err != nil {
		t.Fatalf("client pinning the agent's certificate: %v", err)
	}
	if _, err := c.Env(ctx, []string{"HOME"}, nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	wrongPin, err := agenttls.PinnedConfig(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agentclient.Dial(ctx, addr, agentclient.Options{Name: "operator", Key: agentKey, TLS: wrongPin}); !errors.Is(err, agenttls.ErrNotPinned) {
		t.Fatalf("client pinning another certificate: %v, want ErrNotPinned", err)
	}
	if _, err := agentclient.Dial(ctx, addr, agentclient.Options{Name: "operator", Key: agentKey, HandshakeTimeout: 2 * time.Second}); err == nil {
		t.Fatal("a client without TLS completed a handshake with a TLS agent")
	}
	out, err := runAgentCommand(t, remocalBinary(t), "--target-pid", fmt.Sprint(env.App.PID), "--listen", "tcp:127.0.0.1:0",
		"--secret-file", filepath.Join(dir, "key"), "--tls-cert-file", filepath.Join(dir, "tls.crt"))
	if err == nil || !strings.Contains(out, "--tls-key-file") {
		t.Fatalf("a certificate without its key: %v\n%s", err, out)
	}
}

// An agent with --tls-listen serves its plain listener (the loopback
// address a port-forward reaches) and TLS on a second address (the pod's,
// for clients that reach the pod network): the key proof runs on both, a
// client pinning another certificate stops after the TLS handshake, and a
// plain client gets no answer from the TLS one.
func TestAgentServesPlainAndTLSListeners(t *testing.T) {
	env := envtest.New(t)
	dir := t.TempDir()
	cert, key, err := agenttls.New("agent-test")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := agenttls.New("another-agent")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"key": agentKey, "tls.crt": cert, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(remocalBinary(t), "agent", "--target-pid", fmt.Sprint(env.App.PID), "--listen", "tcp:127.0.0.1:0",
		"--secret-file", filepath.Join(dir, "key"), "--tls-listen", "tcp:127.0.0.1:0",
		"--tls-cert-file", filepath.Join(dir, "tls.crt"), "--tls-key-file", filepath.Join(dir, "tls.key"))
	cmd.Stderr = tWriter{t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	r := bufio.NewReader(stdout)
	var addrs []string
	for _, prefix := range []string{"remocal-agent listening on ", "remocal-agent serving TLS on "} {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("agent output ended: %v", err)
		}
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), prefix)
		if !ok {
			t.Fatalf("line %q, want %q...", line, prefix)
		}
		addrs = append(addrs, addr)
	}
	plain, direct := addrs[0], addrs[1]
	ctx := testCtx(t)
	pinned, err := agenttls.PinnedConfig(cert)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		addr string
		tls  *tls.Config
	}{{plain, nil}, {direct, pinned}} {
		cl, err := agentclient.Dial(ctx, c.addr, agentclient.Options{Name: "alice@laptop", Key: agentKey, TLS: c.tls})
		if err != nil {
			t.Fatalf("client at %s: %v", c.addr, err)
		}
		if _, err := cl.Env(ctx, []string{"HOME"}, nil); err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	wrongPin, err := agenttls.PinnedConfig(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agentclient.Dial(ctx, direct, agentclient.Options{Name: "alice@laptop", Key: agentKey, TLS: wrongPin}); !errors.Is(err, agenttls.ErrNotPinned) {
		t.Fatalf("client pinning another certificate: %v, want ErrNotPinned", err)
	}
	if _, err := agentclient.Dial(ctx, direct, agentclient.Options{Name: "alice@laptop", Key: agentKey, HandshakeTimeout: 2 * time.Second}); err == nil {
		t.Fatal("a client without TLS completed a handshake on the TLS listener")
	}
	if _, err := agentclient.Dial(ctx, direct, agentclient.Options{Name: "alice@laptop", Key: wrongKey, TLS: pinned}); !errors.Is(err, agentclient.ErrUnprovenAgent) {
		t.Fatalf("client with a wrong key over TLS: %v, want ErrUnprovenAgent", err)
	}
	out, err := runAgentCommand(t, remocalBinary(t), "--target-pid", fmt.Sprint(env.App.PID), "--listen", "tcp:127.0.0.1:0",
		"--secret-file", filepath.Join(dir, "key"), "--tls-listen", "tcp:127.0.0.1:0")
	if err == nil || !strings.Contains(out, "--tls-listen needs --tls-cert-file") {
		t.Fatalf("--tls-listen without a certificate: %v\n%s", err, out)
	}
}
