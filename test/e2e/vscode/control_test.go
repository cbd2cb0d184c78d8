package vscode_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
)

// control is the loopback HTTP server the in-host suites call for what only
// the Go side can do: tell them about the run (GET /context), send traffic
// from the "cluster" to the App pod (POST /send), kill the daemon
// (POST /daemon/kill), list the agents serving the App pod (GET /agents),
// count the connections of the silent API server (GET /silent-api).
// Every answer is JSON; errors are {"error": "..."}.
type control struct {
	url string
}

// sendRequest is POST /send: a request from the Peer pod to the App pod,
// as another service of the cluster would send it.
type sendRequest struct {
	Port    int               `json:"port"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	// TimeoutMs bounds the request (default 20 s, at most 60 s).
	TimeoutMs int `json:"timeoutMs"`
}

type sendResult struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

func startControl(t *testing.T, env *localenv.Env, runContext map[string]any, socket string, silent *silentAPI) control {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /context", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, runContext, nil)
	})
	mux.HandleFunc("POST /send", func(w http.ResponseWriter, r *http.Request) {
		var req sendRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
			reply(w, nil, fmt.Errorf("bad /send body: %w", err))
			return
		}
		res, err := send(r.Context(), env, req)
		t.Logf("control: %s %s:%d%s from the peer pod: %+v %v", req.Method, localenv.AppIP, req.Port, req.Path, res, err)
		reply(w, res, err)
	})
	mux.HandleFunc("POST /daemon/kill", func(w http.ResponseWriter, r *http.Request) {
		pid, err := killDaemon(r.Context(), socket)
		t.Logf("control: killed the daemon (pid %d): %v", pid, err)
		reply(w, map[string]int{"pid": pid}, err)
	})
	mux.HandleFunc("GET /agents", func(w http.ResponseWriter, _ *http.Request) {
		agents, err := agentsServing(env.App.PID)
		reply(w, map[string]any{"agents": agents}, err)
	})
	mux.HandleFunc("GET /silent-api", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, silent.stats(), nil)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return control{url: "http://" + l.Addr().String()}
}

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("content-type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		v = map[string]string{"error": err.Error()}
	}
	_ = json.NewEncoder(w).Encode(v)
}

func send(ctx context.Context, env *localenv.Env, req sendRequest) (sendResult, error) {
	if req.Port == 0 {
		req.Port = localenv.AppPort
	}
	if req.Method == "" {
		req.Method = http.MethodGet
	}
	timeout := 20 * time.Second
	if req.TimeoutMs > 0 {
		timeout = min(time.Duration(req.TimeoutMs)*time.Millisecond, time.Minute)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := fmt.Sprintf("http://%s:%d%s", localenv.AppIP, req.Port, req.Path)
	hr, err := http.NewRequestWithContext(ctx, req.Method, url, nil)
	if err != nil {
		return sendResult{}, err
	}
	for k, v := range req.Headers {
		hr.Header.Set(k, v)
	}
	c := env.HTTP(env.Peer)
	defer c.CloseIdleConnections()
	resp, err := c.Do(hr)
	if err != nil {
		return sendResult{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return sendResult{Status: resp.StatusCode, Body: string(body)}, err
}

// killDaemon SIGKILLs the daemon on socket, as a crash would end it, and
// waits until it is gone.
func killDaemon(ctx context.Context, socket string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := daemonclient.Dial(ctx, socket, daemonclient.Options{Name: "vscode-e2e-killer"})
	if err != nil {
		return 0, err
	}
	var info daemon.DaemonInfo
	err = c.Call(ctx, daemon.MethodDaemonInfo, nil, &info)
	c.Close()
	if err != nil {
		return 0, err
	}
	if info.PID <= 1 {
		return 0, errors.New("the daemon reported no pid")
	}
	if err := syscall.Kill(info.PID, syscall.SIGKILL); err != nil {
		return info.PID, err
	}
	return info.PID, waitGone(ctx, info.PID)
}
