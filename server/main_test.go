package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/server"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/server/internal/opsessions"
	"github.com/remocal/remocal/server/internal/targets"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/gobuild"
)

// The daemon's integration tests drive a real daemon over its real socket
// with test clients, as an IDE would, and start real sessions against the
// local "remote" environment. Everything runs inside localenv's
// loopback-only network namespace.
func TestMain(m *testing.M) {
	envtest.Main(m, gobuild.Cleanup)
}

// binary returns cmd/remocal with ver stamped in (a second version for
// version-skew tests).
func binary(t testing.TB, ver string) string {
	t.Helper()
	return gobuild.Program(t, gobuild.Remocal, gobuild.Options{Version: ver})
}

const testVersion = "9.9.9-test"

type daemonOpts struct {
	idle    time.Duration
	targets *targets.Set
	kube    config.Kubernetes
	remote  *opsessions.Watcher
}

type testDaemon struct {
	socket string
	srv    *server.Server
	done   chan error
	cancel context.CancelFunc
}

// startDaemon runs a daemon in this process on a socket of its own.
func startDaemon(t testing.TB, o daemonOpts) *testDaemon {
	t.Helper()
	dir := shortTempDir(t)
	socket := filepath.Join(dir, "daemon.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	if o.targets == nil {
		o.targets = targets.NewSet()
	}
	srv, err := server.New(server.Options{Version: testVersion, Socket: socket, RuntimeDir: dir, Self: binary(t, testVersion),
		IdleTimeout: o.idle, Targets: o.targets, Remote: o.remote, Kubernetes: o.kube, Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &testDaemon{socket: socket, srv: srv, done: make(chan error, 1), cancel: cancel}
	go func() { d.done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-d.done; err != nil && !errors.Is(err, server.ErrIdle) {
			t.Errorf("daemon: %v", err)
		}
	})
	return d
}

// shortTempDir keeps unix socket paths under the 108-byte limit.
func shortTempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "rmcd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func connect(t testing.TB, socket string, o daemonclient.Options) *daemonclient.Client {
	t.Helper()
	if o.Name == "" {
		o.Name = "test-client"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := daemonclient.Dial(ctx, socket, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitNotification returns the first notification of method satisfying ok.
func waitNotification(t testing.TB, c *daemonclient.Client, method string, ok func(daemonclient.Notification) bool) daemonclient.Notification {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case n := <-c.Notifications():
			if n.Method == method && (ok == nil || ok(n)) {
				return n
			}
		case <-timeout:
			t.Fatalf("no %s notification within 30s", method)
		}
	}
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	defer func() { recover() }()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// rawConn is a socket connection for sending bytes no real client would.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, socket string) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

func (r *rawConn) send(body string) {
	fmt.Fprintf(r, "Content-Length: %d\r\n\r\n%s", len(body), body)
}

// read returns one message body, or "" at EOF.
func (r *rawConn) read(t testing.TB) string {
	t.Helper()
	length := -1
	for {
		line, err := r.r.ReadString('\n')
		if err != nil {
			return ""
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		fmt.Sscanf(line, "Content-Length: %d", &length)
	}
	buf := make([]byte, length)
	if _, err := io.ReadFull(r.r, buf); err != nil {
		t.Fatal(err)
	}
	return string(buf)
}

func netDialUnix(socket string) (net.Conn, error) { return net.Dial("unix", socket) }

func defaultClient() daemonclient.Options { return daemonclient.Options{Name: "test-client"} }
