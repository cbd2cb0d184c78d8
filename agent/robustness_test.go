package agent_test

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
)

func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("unix", strings.TrimPrefix(addr, "unix:"))
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readRejection reads the agent's preamble and error frame.
func readRejection(t *testing.T, conn net.Conn) *wire.Error {
	t.Helper()
	if err := wire.ReadPreamble(conn); err != nil {
		t.Fatal(err)
	}
	_, err := wire.ReadMessage[*wire.Welcome](conn, wire.MaxHandshakeFrameSize)
	we, ok := err.(*wire.Error)
	if !ok {
		t.Fatalf("want an error frame, got %v", err)
	}
	return we
}

func TestHandshakeRejections(t *testing.T) {
	env := envtest.New(t)
	addr := startAgent(t, env.App, agentOptions{}).addr

	t.Run("not remocal", func(t *testing.T) {
		conn := rawDial(t, addr)
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if we := readRejection(t, conn); !strings.Contains(we.Message, "did not speak the remocal protocol") {
			t.Errorf("rejection = %v", we)
		}
	})
	t.Run("incompatible version", func(t *testing.T) {
		conn := rawDial(t, addr)
		wire.WritePreamble(conn)
		wire.WriteMessage(conn, 0, &wire.Hello{Protocol: wire.Version{Major: 2, Minor: 3}, Client: wire.ClientInfo{Name: "future"}})
		we := readRejection(t, conn)
		if we.Code != wire.CodeIncompatibleVersion || !strings.Contains(we.Message, "2.3") || !strings.Contains(we.Message, wire.Current.String()) {
			t.Errorf("rejection = %v; want incompatible_version naming both versions", we)
		}
	})
	t.Run("hello without name", func(t *testing.T) {
		conn := rawDial(t, addr)
		wire.WritePreamble(conn)
		wire.WriteMessage(conn, 0, &wire.Hello{Protocol: wire.Current})
		if we := readRejection(t, conn); we.Code != wire.CodeInvalid || !strings.Contains(we.Message, "client.name") {
			t.Errorf("rejection = %v", we)
		}
	})
	t.Run("oversized hello", func(t *testing.T) {
		conn := rawDial(t, addr)
		wire.WritePreamble(conn)
		conn.Write(binary.BigEndian.AppendUint32(nil, 1<<30))
		if we := readRejection(t, conn); we.Code != wire.CodeTooLarge {
			t.Errorf("rejection = %v", we)
		}
	})
	// After all that, a well-behaved client is served.
	if err := connect(t, addr, "alice@laptop").Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// rawSession completes the handshake by hand and returns a yamux session
// and control stream, so a test can send frames no real client would.
func rawSession(t *testing.T, addr string) (*yamux.Session, net.Conn) {
	t.Helper()
	conn := rawDial(t, addr)
	wire.WritePreamble(conn)
	wire.WriteMessage(conn, 0, &wire.Hello{Protocol: wire.Current, Client: wire.ClientInfo{Name: "fuzzer"}})
	if err := wire.ReadPreamble(conn); err != nil {
		t.Fatal(err)
	}
	if _, err := wire.ReadMessage[*wire.Welcome](conn, wire.MaxHandshakeFrameSize); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Time{})
	mux, err := yamux.Client(conn, wire.MuxConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mux.Close() })
	control, err := mux.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	control.SetDeadline(time.Now().Add(10 * time.Second))
	return mux, control
}

func frame(payload string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

func TestMalformedFramesGetErrorsAndOthersKeepBeingServed(t *testing.T) {
	env := envtest.New(t)
	addr := startAgent(t, env.App, agentOptions{}).addr
	good := connect(t, addr, "alice@laptop")
	mux, control := rawSession(t, addr)

	expectError := func(code wire.Code, id uint64) {
		t.Helper()
		env, err := wire.ReadEnvelope(control, wire.MaxFrameSize)
		if err != nil {
			t.Fatalf("want an error reply, got %v", err)
		}
		if env.Type != wire.TypeError || env.Error.Code != code || env.ID != id {
			t.Fatalf("reply = %+v (error %v), want %s for id %d", env, env.Error, code, id)
		}
	}
	// Well-delimited but bad frames: an error each, and the session goes on.
	control.Write(frame(`{"id":1,"type":"ping"`))
	expectError(wire.CodeInvalid, 0)
	control.Write(frame(`{"id":2,"type":"self.destruct"}`))
	expectError(wire.CodeUnsupported, 2)
	control.Write(frame(`{"id":3,"type":"file.read","body":{"path":"relative"}}`))
	expectError(wire.CodeInvalid, 3)
	control.Write(frame(`{"id":4,"type":"welcome","body":{"protocol":{"major":1}}}`))
	expectError(wire.CodeUnsupported, 4)
	wire.WriteMessage(control, 5, &wire.Ping{Payload: "still here"})
	if pong, err := wire.ReadMessage[*wire.PingResult](control, wire.MaxFrameSize); err != nil || pong.Payload != "still here" {
		t.Fatalf("ping after bad frames = %+v, %v", pong, err)
	}

	// A stream that starts with something other than a dial is refused.
	st, err := mux.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	st.SetDeadline(time.Now().Add(10 * time.Second))
	wire.WriteMessage(st, 0, &wire.Ping{})
	if _, err := wire.ReadMessage[*wire.DialResult](st, wire.MaxFrameSize); wire.CodeOf(err) != wire.CodeUnsupported {
		t.Errorf("ping as a stream header: want unsupported, got %v", err)
	}

	// A truncated frame loses sync: the agent ends that client only.
	control.Write(binary.BigEndian.AppendUint32(nil, 100))
	control.Write([]byte(`{"id":6`))
	control.Close()
	select {
	case <-mux.CloseChan():
	case <-time.After(10 * time.Second):
		t.Fatal("the agent kept a client whose control stream broke")
	}
	if err := good.Ping(testCtx(t)); err != nil {
		t.Fatalf("the other client was affected: %v", err)
	}
}

func TestOversizedControlFrame(t *testing.T) {
	env := envtest.New(t)
	addr := startAgent(t, env.App, agentOptions{}).addr
	mux, control := rawSession(t, addr)
	control.Write(binary.BigEndian.AppendUint32(nil, wire.MaxFrameSize+1))
	env2, err := wire.ReadEnvelope(control, wire.MaxFrameSize)
	if err != nil || env2.Error == nil || env2.Error.Code != wire.CodeTooLarge {
		t.Fatalf("reply = %+v, %v; want too_large", env2, err)
	}
	select {
	case <-mux.CloseChan():
	case <-time.After(10 * time.Second):
		t.Fatal("the agent kept a client after an oversized frame")
	}
}
