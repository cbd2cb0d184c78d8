package agent_test

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"

	"github.com/remocal/remocal/agent"
	"github.com/remocal/remocal/agent/target"
	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/protocol/wire"
)

// A targetless agent serves its own network: connections out work, while
// the environment is empty, and incoming traffic is refused with a reason
// and not advertised.
func TestTargetlessAgent(t *testing.T) {
	proc, err := target.Targetless{}.Locate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()
	a, err := agent.New(agent.Config{Target: proc, Version: "test", Targetless: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, l) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	c := connect(t, "unix:"+sock, "alice")

	caps := c.Welcome().Capabilities
	for _, absent := range []wire.Capability{wire.CapEnv, wire.CapMirror, wire.CapSteal} {
		if wire.HasCapability(caps, absent) {
			t.Errorf("targetless agent advertises %s: %v", absent, caps)
		}
	}
	if !wire.HasCapability(caps, wire.CapDialTCP) {
		t.Errorf("targetless agent does not advertise %s: %v", wire.CapDialTCP, caps)
	}
	vars, err := c.Env(testCtx(t), nil, nil)
	if err != nil || len(vars) != 0 {
		t.Errorf("Env = %v, %v; want no variables", vars, err)
	}
	_, err = c.Subscribe(testCtx(t), wire.Subscribe{Port: 8080, Mode: wire.ModeMirror}, agentclient.ForwardTo("127.0.0.1:1"))
	if wire.CodeOf(err) != wire.CodeUnsupported {
		t.Errorf("Subscribe error = %v, want code %s", err, wire.CodeUnsupported)
	}

	// The agent's own network: this test's loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			conn.Write([]byte("from the agent's network"))
			conn.Close()
		}
	}()
	conn, err := c.DialContext(testCtx(t), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if string(got) != "from the agent's network" {
		t.Errorf("read %q through the agent", got)
	}
}
