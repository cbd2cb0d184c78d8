package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.lsp.dev/jsonrpc2"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
)

func rpcCode(err error) jsonrpc2.Code {
	var je *jsonrpc2.Error
	if errors.As(err, &je) {
		return je.Code
	}
	return 0
}

func TestInitializeReportsVersion(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	c := connect(t, d.socket, daemonclient.Options{})
	if v, _ := c.Server.Version.Get(); c.Server.Name != daemon.ServerName || v != testVersion {
		t.Errorf("serverInfo = %+v", c.Server)
	}
	if c.ProtocolVersion != daemon.ProtocolVersion {
		t.Errorf("initialize reports protocol version %q, want %q", c.ProtocolVersion, daemon.ProtocolVersion)
	}
	var info daemon.DaemonInfo
	if err := c.Call(testCtx(t), daemon.MethodDaemonInfo, nil, &info); err != nil {
		t.Fatal(err)
	}
	if info.Version != testVersion || info.ProtocolVersion != daemon.ProtocolVersion || info.Clients != 1 || info.Socket != d.socket {
		t.Errorf("info = %+v", info)
	}
}

func TestRequestsBeforeInitializeAndAfterShutdown(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	raw := dialRaw(t, d.socket)
	raw.send(`{"jsonrpc":"2.0","id":1,"method":"remocal/session/list"}`)
	if reply := raw.read(t); !strings.Contains(reply, `"code":-32002`) || !strings.Contains(reply, "send initialize before remocal/session/list") {
		t.Errorf("before initialize: %s", reply)
	}
	raw.send(`{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"capabilities":{}}}`)
	if reply := raw.read(t); !strings.Contains(reply, `"serverInfo"`) {
		t.Fatalf("initialize: %s", reply)
	}
	// Notifications never get an answer, and never end the connection:
	// unknown ones, malformed ones.
	raw.send(`{"jsonrpc":"2.0","method":"remocal/noSuchNotification","params":{"x":1}}`)
	raw.send(`{"jsonrpc":"2.0","method":"initialized","params":"not an object"}`)
	raw.send(`{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"capabilities":{}}}`)
	if reply := raw.read(t); !strings.Contains(reply, "initialize sent twice") {
		t.Errorf("second initialize: %s", reply)
	}
	raw.send(`{"jsonrpc":"2.0","id":4,"method":"shutdown"}`)
	if reply := raw.read(t); !strings.Contains(reply, `"id":4,"result":null`) {
		t.Errorf("shutdown: %s", reply)
	}
	raw.send(`{"jsonrpc":"2.0","id":5,"method":"remocal/session/list"}`)
	if reply := raw.read(t); !strings.Contains(reply, "after shutdown: only exit is accepted") {
		t.Errorf("after shutdown: %s", reply)
	}
	raw.send(`{"jsonrpc":"2.0","method":"exit"}`)
	if reply := raw.read(t); reply != "" {
		t.Errorf("exit must close the connection, got %s", reply)
	}
	// The shared daemon is still there for everyone else.
	c := connect(t, d.socket, daemonclient.Options{})
	if err := c.Call(testCtx(t), daemon.MethodSessionList, nil, nil); err != nil {
		t.Fatalf("daemon after one client's exit: %v", err)
	}
}

func TestUnknownMethods(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	c := connect(t, d.socket, daemonclient.Options{})
	err := c.Call(testCtx(t), "remocal/doesNotExist", nil, nil)
	if rpcCode(err) != jsonrpc2.MethodNotFound || !strings.Contains(err.Error(), "remocal/session/start") {
		t.Errorf("unknown method: %v", err)
	}
	var res daemon.SessionListResult
	if err := c.Call(testCtx(t), daemon.MethodSessionList, nil, &res); err != nil || res.Sessions == nil {
		t.Errorf("the connection must survive an unknown method: %+v %v", res, err)
	}
	err = c.Call(testCtx(t), daemon.MethodSessionStop, map[string]any{"id": 7}, nil)
	if rpcCode(err) != jsonrpc2.InvalidParams {
		t.Errorf("ill-typed params: %v", err)
	}
	err = c.Call(testCtx(t), daemon.MethodSessionDetail, daemon.SessionParams{ID: "s404"}, nil)
	if rpcCode(err) != daemon.CodeSessionNotFound || !strings.Contains(err.Error(), `no session "s404"`) {
		t.Errorf("missing session: %v", err)
	}
}

func TestMalformedAndOversizedFrames(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	raw := dialRaw(t, d.socket)
	raw.send(`{"jsonrpc":"2.0","id":1,"method":`)
	if reply := raw.read(t); !strings.Contains(reply, `"code":-32700`) || !strings.Contains(reply, `"id":null`) {
		t.Errorf("malformed JSON: %s", reply)
	}
	raw.send(`{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"capabilities":{}}}`)
	if reply := raw.read(t); !strings.Contains(reply, `"serverInfo"`) {
		t.Fatalf("the connection must survive malformed JSON: %s", reply)
	}
	// A frame too large to accept: answered, then the connection closes.
	raw.Write([]byte("Content-Length: 999999999\r\n\r\n"))
	if reply := raw.read(t); !strings.Contains(reply, "exceeds the 16777216 byte limit") {
		t.Errorf("oversized: %s", reply)
	}
	if reply := raw.read(t); reply != "" {
		t.Errorf("the connection must close after an oversized frame, got %s", reply)
	}
	raw2 := dialRaw(t, d.socket)
	raw2.Write([]byte("Content-Length 12\r\n\r\n"))
	if reply := raw2.read(t); !strings.Contains(reply, "has no colon") {
		t.Errorf("broken header: %s", reply)
	}
	// Others are unaffected.
	c := connect(t, d.socket, daemonclient.Options{})
	if err := c.Call(testCtx(t), daemon.MethodSessionList, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownMethod repeats the call: the daemon used to close the
// connection while the reply was still unwritten, and the caller saw EOF
// about one time in a few hundred.
func TestShutdownMethod(t *testing.T) {
	for i := range 40 {
		d := startDaemon(t, daemonOpts{})
		c := connect(t, d.socket, daemonclient.Options{})
		if err := c.Call(context.Background(), daemon.MethodDaemonShutdown, daemon.DaemonShutdownParams{}, nil); err != nil {
			t.Fatalf("shutdown %d: %v", i, err)
		}
		if err := <-d.done; err != nil {
			t.Fatalf("Serve after shutdown = %v", err)
		}
		d.done <- nil
	}
}
