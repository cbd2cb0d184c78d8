package vscode_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// silentAPI is a Kubernetes API server that accepts connections and never
// answers: a session start on one of its targets hangs in its first API
// call, long enough to be shown as progress and cancelled. It listens on
// the test's loopback (inside its network namespace).
type silentAPI struct {
	kubeconfig string
	mu         sync.Mutex
	accepted   int
	open       map[net.Conn]bool
}

// silentAPIStats is GET /silent-api: connections accepted so far and still
// open (a cancelled start must release its connection).
type silentAPIStats struct {
	Accepted int `json:"accepted"`
	Open     int `json:"open"`
}

func startSilentAPI(t *testing.T) *silentAPI {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentAPI{open: map[net.Conn]bool{}}
	// Outside the workspace: a configuration (the launch configuration's
	// overrides) may name a kubeconfig only outside its project.
	s.kubeconfig = filepath.Join(t.TempDir(), "silent.kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: silent
clusters: [{name: silent, cluster: {server: "http://%s"}}]
users: [{name: nobody, user: {}}]
contexts: [{name: silent, context: {cluster: silent, user: nobody, namespace: default}}]
`, l.Addr())
	if err := os.WriteFile(s.kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted++
			s.open[c] = true
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Read (and drop) the requests until the client goes.
				_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
				c.Close()
				s.mu.Lock()
				delete(s.open, c)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		s.mu.Lock()
		for c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		wg.Wait()
	})
	return s
}

func (s *silentAPI) stats() silentAPIStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return silentAPIStats{Accepted: s.accepted, Open: len(s.open)}
}
