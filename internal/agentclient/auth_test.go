package agentclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/remocal/remocal/protocol/wire"
)

var key = []byte("the-agent-key-its-creator-made-0123")

// fakeAgent answers one connection the way welcome says, and records every
// byte the client sends.
type fakeAgent struct {
	// welcome builds the answer to hello; it may set a proof.
	welcome func(h *wire.Hello) *wire.Welcome

	mu       sync.Mutex
	received bytes.Buffer
	done     chan struct{}
}

func (f *fakeAgent) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.received.Write(p)
}

// serve plays the agent on conn: it records everything, answers the hello
// and, if the client authenticates, accepts and serves a multiplexer.
func (f *fakeAgent) serve(t *testing.T, conn net.Conn) {
	defer close(f.done)
	defer conn.Close()
	r := io.TeeReader(conn, f)
	if err := wire.ReadPreamble(r); err != nil {
		return
	}
	hello, err := wire.ReadMessage[*wire.Hello](r, wire.MaxHandshakeFrameSize)
	if err != nil {
		t.Errorf("fake agent: hello: %v", err)
		return
	}
	w := f.welcome(hello)
	wire.WritePreamble(conn)
	wire.WriteMessage(conn, 0, w)
	if w.Proof != nil {
		if _, err := wire.ReadMessage[*wire.Auth](r, wire.MaxHandshakeFrameSize); err != nil {
			io.Copy(io.Discard, r)
			return
		}
		wire.WriteMessage(conn, 0, &wire.AuthResult{})
	}
	if mux, err := yamux.Server(readerConn{conn, r}, wire.MuxConfig()); err == nil {
		mux.AcceptStream()
		mux.Close()
	}
	io.Copy(io.Discard, r)
}

type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// connect runs New against f and returns what f received and New's error,
// once the connection is closed.
func (f *fakeAgent) connect(t *testing.T, opts Options) (*Client, []byte, error) {
	t.Helper()
	f.done = make(chan struct{})
	client, server := net.Pipe()
	go f.serve(t, server)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts.Name = "alice@laptop"
	c, err := New(ctx, client, opts)
	if c != nil {
		c.Close()
	} else {
		client.Close()
	}
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	return c, bytes.Clone(f.received.Bytes()), err
}

func baseWelcome(caps ...wire.Capability) *wire.Welcome {
	return &wire.Welcome{Protocol: wire.Current, Agent: wire.AgentInfo{Version: "test"}, ClientID: "c1",
		Target: wire.TargetInfo{Name: "deployment/api"}, Capabilities: append(wire.AllCapabilities[:len(wire.AllCapabilities):len(wire.AllCapabilities)], caps...)}
}

// onlyHello checks that the client sent its preamble and hello and not one
// byte more.
func onlyHello(t *testing.T, received []byte) {
	t.Helper()
	r := bytes.NewReader(received)
	if err := wire.ReadPreamble(r); err != nil {
		t.Fatal(err)
	}
	if _, err := wire.ReadMessage[*wire.Hello](r, wire.MaxHandshakeFrameSize); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Errorf("the client sent %d bytes to an agent that did not prove its key", r.Len())
	}
}

// A peer that is not the agent the client's side created (a pod dressed as
// one, the target app on the agent's port) does not know the key: the
// client refuses it and sends it nothing after the hello.
func TestClientRefusesAnAgentThatCannotProveTheKey(t *testing.T) {
	var replayed []byte // a genuine proof, from an earlier connection
	{
		f := &fakeAgent{welcome: func(h *wire.Hello) *wire.Welcome {
			w := baseWelcome(wire.CapAuth)
			w.Nonce = wire.NewNonce()
			w.Proof = wire.AgentProof(key, h, w)
			replayed = w.Proof
			return w
		}}
		if _, _, err := f.connect(t, Options{Key: key}); err != nil {
			t.Fatalf("the genuine agent: %v", err)
		}
	}
	impostors := map[string]func(h *wire.Hello) *wire.Welcome{
		// Downgrade: an agent that says it has no key.
		"no proof": func(h *wire.Hello) *wire.Welcome { return baseWelcome() },
		"no proof but the capability": func(h *wire.Hello) *wire.Welcome {
			return baseWelcome(wire.CapAuth)
		},
		"made-up proof": func(h *wire.Hello) *wire.Welcome {
			w := baseWelcome(wire.CapAuth)
			w.Nonce, w.Proof = wire.NewNonce(), wire.NewNonce()
			return w
		},
		"proof with another key": func(h *wire.Hello) *wire.Welcome {
			w := baseWelcome(wire.CapAuth)
			w.Nonce = wire.NewNonce()
			w.Proof = wire.AgentProof([]byte("the-impostor-s-own-key-0123456789"), h, w)
			return w
		},
		"replayed proof": func(h *wire.Hello) *wire.Welcome {
			w := baseWelcome(wire.CapAuth)
			w.Nonce, w.Proof = wire.NewNonce(), replayed
			return w
		},
		// Reflection: the client's own proof label cannot pass for the agent's.
		"reflected client proof": func(h *wire.Hello) *wire.Welcome {
			w := baseWelcome(wire.CapAuth)
			w.Nonce = wire.NewNonce()
			w.Proof = wire.ClientProof(key, h, w)
			return w
		},
	}
	for name, welcome := range impostors {
		t.Run(name, func(t *testing.T) {
			f := &fakeAgent{welcome: welcome}
			_, received, err := f.connect(t, Options{Key: key})
			var unproven *UnprovenAgentError
			if !errors.As(err, &unproven) || !errors.Is(err, ErrUnprovenAgent) {
				t.Fatalf("handshake with an impostor: %v; want an *UnprovenAgentError", err)
			}
			onlyHello(t, received)
		})
	}
}

// A client without a key accepts an agent that proves nothing only when
// told to (a unix socket, --agent-insecure).
func TestClientWithoutKeyNeedsPermissionToAcceptAnUnprovenAgent(t *testing.T) {
	f := &fakeAgent{welcome: func(*wire.Hello) *wire.Welcome { return baseWelcome() }}
	if _, received, err := f.connect(t, Options{}); !errors.Is(err, ErrUnprovenAgent) {
		t.Fatalf("without Unauthenticated: %v", err)
	} else {
		onlyHello(t, received)
	}
	if _, _, err := f.connect(t, Options{Unauthenticated: true}); err != nil {
		t.Fatalf("with Unauthenticated: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Dial(ctx, "tcp:127.0.0.1:1", Options{Name: "alice"}); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Dial over TCP without a key: %v; want ErrNoKey before connecting", err)
	}
}

// The operator proves nothing in its Welcome (the kube-apiserver's TLS
// authenticated it): a client told so accepts a Welcome listing
// CapOperator, and still refuses a plain agent that proves nothing, or one
// that wants a key it does not have.
func TestTransportAuthenticatedAcceptsOnlyTheOperator(t *testing.T) {
	op := &fakeAgent{welcome: func(*wire.Hello) *wire.Welcome { return baseWelcome(wire.CapOperator) }}
	if _, received, err := op.connect(t, Options{}); !errors.Is(err, ErrUnprovenAgent) {
		t.Fatalf("the operator without TransportAuthenticated: %v; want ErrUnprovenAgent", err)
	} else {
		onlyHello(t, received)
	}
	if _, _, err := op.connect(t, Options{TransportAuthenticated: true}); err != nil {
		t.Fatalf("the operator with TransportAuthenticated: %v", err)
	}
	agent := &fakeAgent{welcome: func(*wire.Hello) *wire.Welcome { return baseWelcome() }}
	if _, received, err := agent.connect(t, Options{TransportAuthenticated: true}); !errors.Is(err, ErrUnprovenAgent) {
		t.Fatalf("an agent that proves nothing, with TransportAuthenticated: %v; want ErrUnprovenAgent", err)
	} else {
		onlyHello(t, received)
	}
	keyed := &fakeAgent{welcome: func(*wire.Hello) *wire.Welcome { return baseWelcome(wire.CapAuth) }}
	if _, received, err := keyed.connect(t, Options{TransportAuthenticated: true}); !errors.Is(err, &wire.Error{Code: wire.CodePermissionDenied}) {
		t.Fatalf("an agent that wants its key, with TransportAuthenticated: %v; want permission_denied", err)
	} else {
		onlyHello(t, received)
	}
}
