package vscode_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/test/poll"
)

// host is what test/setup/vscode-host.sh installed.
type host struct {
	node, nodeBin, codeServer, playwright string
}

func findHost(t *testing.T) host {
	t.Helper()
	cache := os.Getenv("REMOCAL_VSCODE_CACHE")
	if cache == "" {
		cache = "/var/cache/remocal-vscode"
	}
	nodeBin := filepath.Join(cache, "node", "node_modules", ".bin")
	h := host{
		node:       filepath.Join(nodeBin, "node"),
		nodeBin:    nodeBin,
		codeServer: filepath.Join(cache, "host", "node_modules", "code-server", "out", "node", "entry.js"),
		playwright: filepath.Join(cache, "host", "node_modules", "playwright-core"),
	}
	for _, f := range []string{h.node, h.codeServer, h.playwright, "/usr/bin/chromium"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the VS Code test host is not installed (%v): run test/setup/vscode-host.sh as root (make vscode-e2e does)", err)
		}
	}
	return h
}

// stopDaemon ends the daemon listening on socket, if any, with its
// sessions: asked first, killed if it does not go.
func stopDaemon(t *testing.T, socket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := daemonclient.Dial(ctx, socket, daemonclient.Options{Name: "vscode-e2e-cleanup"})
	if err != nil {
		return // none runs
	}
	var info daemon.DaemonInfo
	if err := c.Call(ctx, daemon.MethodDaemonInfo, nil, &info); err != nil {
		t.Errorf("cleanup: daemon info: %v", err)
		c.Close()
		return
	}
	if err := c.Call(ctx, daemon.MethodDaemonShutdown, daemon.DaemonShutdownParams{Force: true}, nil); err != nil {
		t.Logf("cleanup: daemon shutdown: %v", err)
	}
	c.Close()
	if err := waitGone(ctx, info.PID); err != nil {
		t.Logf("cleanup: daemon %d did not exit (%v); killing it", info.PID, err)
		_ = syscall.Kill(info.PID, syscall.SIGKILL)
	}
}

func waitGone(ctx context.Context, pid int) error {
	return poll.Until(ctx, 10*time.Second, func() error {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return errors.New("still running")
	})
}
