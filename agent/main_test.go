package agent_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/agent"
	"github.com/remocal/remocal/agent/target"
	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/gobuild"
)

// The integration tests run against a real environment of network
// namespaces (internal/localenv); the test process itself sits in a
// loopback-only namespace, so anything not sent through the agent or a pod's
// namespace cannot reach the pods at all.
func TestMain(m *testing.M) {
	envtest.Main(m, gobuild.Cleanup)
}

type testAgent struct {
	agent  *agent.Agent
	addr   string
	cancel context.CancelFunc
	done   chan error
}

type agentOptions struct {
	idleTTL time.Duration
	// nodeAddrs play the node's addresses, where kubelet probes come from.
	nodeAddrs []netip.Addr
	// key is the agent's secret; clients must prove it.
	key []byte
}

// startAgent serves the pod's process with an in-process agent on a unix
// socket, stopped at cleanup.
func startAgent(t testing.TB, pod *localenv.Pod, opts agentOptions) *testAgent {
	t.Helper()
	proc, err := target.PID(pod.PID).Locate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Close() })
	a, err := agent.New(agent.Config{Target: proc, Version: "test", IdleTTL: opts.idleTTL, Logger: testLogger(t), NodeAddrs: opts.nodeAddrs, Key: opts.key})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{agent: a, addr: "unix:" + sock, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- a.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ta.done; err != nil && !errors.Is(err, agent.ErrTargetExited) && !errors.Is(err, agent.ErrIdle) {
			t.Errorf("agent stopped with %v", err)
		}
	})
	return ta
}

// wait returns Serve's result.
func (ta *testAgent) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-ta.done:
		ta.done <- err // for cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop")
		return nil
	}
}

func connect(t *testing.T, addr, name string) *agentclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := agentclient.Dial(ctx, addr, agentclient.Options{Name: name, Version: "test", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testLogger sends logs to t.Log so failures show what the agent did.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	defer func() { recover() }() // a log from a goroutine outliving its test must not panic the binary
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// get sends a request from the peer pod to the app pod and returns status,
// body and the X-Served-By header.
func get(t *testing.T, env *localenv.Env, path string, header http.Header) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), "GET", "http://"+localenv.AppIP.String()+":8080"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := env.HTTP(env.Peer).Do(req)
	if err != nil {
		t.Fatalf("GET %s from the peer pod: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header.Get("X-Served-By")
}

// remocalBinary builds cmd/remocal once per test binary, for tests that need
// the agent as a separate process (to SIGKILL it).
func remocalBinary(t *testing.T) string {
	t.Helper()
	return gobuild.Program(t, gobuild.Remocal, gobuild.Options{})
}
