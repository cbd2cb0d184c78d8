// Package client speaks the agent wire protocol from the client side: the
// handshake, concurrent control requests, outgoing dials through the target
// and incoming traffic delivered by the agent. The interposition layer, the
// daemon and the demo all reach agents through it.
package agentclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sourcegraph/conc"

	"github.com/remocal/remocal/internal/muxwrite"
	"github.com/remocal/remocal/protocol/wire"
)

// Options configure a client.
type Options struct {
	// Name tells the agent and other users who is connecting, for example
	// "alice@laptop". Required.
	Name    string
	Version string
	// Session identifies a remocal session across reconnections: the
	// agent replaces an earlier connection with the same Session (whose
	// loss it may not have noticed yet), releasing its ports. Empty for
	// connections that never reconnect. To an operator it is the name of
	// the session to resume (Welcome().Operator.Session of the previous
	// connection): its locks were kept, and the client subscribes again.
	Session string
	Logger  *slog.Logger
	// HandshakeTimeout bounds the handshake; default 10s.
	HandshakeTimeout time.Duration
	// StreamWindow, if not zero, is the most a stream may receive before
	// its reader reads it (at least 256 KiB; default wire.MuxConfig's):
	// the memory a stream may hold in this process when its reader is the
	// slower side, and, divided by the round trip, a single stream's top
	// speed.
	StreamWindow uint32
	// Key is the agent's secret, from whoever created it: the agent must
	// prove it holds the key before the client sends anything after its
	// hello, and the client proves it in turn (wire/auth.go). An agent that
	// cannot prove it is refused with an *UnprovenAgentError.
	Key []byte
	// Unauthenticated accepts, when Key is nil, an agent that proves
	// nothing: set by Dial for unix sockets (a local agent's 0600 socket is
	// the credential), and by the user's explicit --agent-insecure.
	// Without it a client with no key refuses every agent.
	Unauthenticated bool
	// TransportAuthenticated accepts, when Key is nil, a peer whose
	// Welcome lists wire.CapOperator without a proof: remocal's operator,
	// reached through the kube-apiserver, whose TLS and APIService
	// authenticate it. A peer that is not the operator is still held to
	// the rules above (an agent must prove its key, or Unauthenticated
	// must be set).
	TransportAuthenticated bool
	// Host and Tool describe the client to an operator, which shows them
	// in its sessions (the machine's host name, "remocal exec").
	Host, Tool string
	// OnEvent receives the events the server pushes (protocol 1.2: an
	// operator's wire.Event), in order. It runs on the control stream's
	// reader, so it must not block; a subscription.lost event has already
	// ended its Subscription when OnEvent sees it.
	OnEvent func(wire.Event)
	// Heartbeat, when positive, pings the server this often while
	// connected: an operator keeps a session's lease alive by them.
	Heartbeat time.Duration
	// WithoutCapabilities are left out of the hello, so the agent does not
	// use them with this client: tests play an older client with it.
	WithoutCapabilities []wire.Capability
	// TLS, when set, makes Dial speak TLS over TCP with this
	// configuration (the operator pins each agent's certificate:
	// internal/agenttls). The key proof still runs inside.
	TLS *tls.Config
}

// UnprovenAgentError says the peer did not prove it holds the key the
// client was given: it is not the agent the client's side created (a pod
// dressed as one, a process that took the agent's port). Nothing was sent
// to it after the hello.
type UnprovenAgentError struct {
	// Why says what was wrong with its welcome.
	Why string
}

func (e *UnprovenAgentError) Error() string {
	return "the agent did not prove it holds the key it was created with (" + e.Why + ")"
}

// ErrUnprovenAgent matches an *UnprovenAgentError with errors.Is.
var ErrUnprovenAgent = errors.New("the agent did not prove it holds its key")

func (e *UnprovenAgentError) Is(target error) bool { return target == ErrUnprovenAgent }

// Client is a connection to one agent. It is safe for concurrent use.
type Client struct {
	opts    Options
	log     *slog.Logger
	conn    io.ReadWriteCloser
	mux     *yamux.Session
	welcome wire.Welcome
	wg      conc.WaitGroup

	control net.Conn
	writeMu sync.Mutex
	nextID  atomic.Uint64

	mu          sync.Mutex
	pending     map[uint64]chan *wire.Envelope
	subs        map[string]*Subscription
	subsChanged chan struct{} // closed and replaced whenever subs gains one
	err         error         // why the client stopped

	done      chan struct{}
	closeOnce sync.Once
}

// Dial connects to an agent at address: "unix:/path/to.sock", "tcp:host:port"
// or plain "host:port". Over TCP it needs opts.Key, or opts.Unauthenticated
// set explicitly; over a unix socket it accepts an agent without a key.
func Dial(ctx context.Context, address string, opts Options) (*Client, error) {
	network, addr := "tcp", address
	switch {
	case strings.HasPrefix(address, "unix:"):
		network, addr = "unix", strings.TrimPrefix(address, "unix:")
		opts.Unauthenticated = true
	case strings.HasPrefix(address, "tcp:"):
		addr = strings.TrimPrefix(address, "tcp:")
	}
	if network == "tcp" && opts.Key == nil && !opts.Unauthenticated {
		return nil, fmt.Errorf("connect to agent at %s: %w", address, ErrNoKey)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("connect to agent at %s: %w", address, err)
	}
	if opts.TLS != nil && network == "tcp" {
		tc := tls.Client(conn, opts.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS handshake with agent at %s: %w", address, err)
		}
		conn = tc
	}
	c, err := New(ctx, conn, opts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// ErrNoKey refuses to talk to a TCP agent without its key: anyone on the
// network could be answering.
var ErrNoKey = errors.New("an agent on TCP must prove itself with the key it was started with: pass its key file (--agent-secret-file), or --agent-insecure to connect to an agent without one")

// New runs the handshake over conn and starts the client. On error conn is
// left open for the caller to close.
func New(ctx context.Context, conn io.ReadWriteCloser, opts Options) (*Client, error) {
	if opts.Name == "" {
		return nil, errors.New("client name is required: agents show it to other users in conflicts")
	}
	if opts.HandshakeTimeout == 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		opts: opts, log: log, conn: conn,
		pending: map[uint64]chan *wire.Envelope{}, subs: map[string]*Subscription{}, subsChanged: make(chan struct{}),
		done: make(chan struct{}),
	}
	if err := c.handshake(ctx); err != nil {
		return nil, err
	}
	cfg := wire.MuxConfig()
	if opts.StreamWindow != 0 {
		cfg.MaxStreamWindowSize = opts.StreamWindow
	}
	mux, err := yamux.Client(muxwrite.Wrap(conn), cfg)
	if err != nil {
		return nil, fmt.Errorf("start stream multiplexer: %w", err)
	}
	c.mux = mux
	control, err := mux.OpenStream()
	if err != nil {
		mux.Close()
		return nil, fmt.Errorf("open control stream: %w", err)
	}
	c.control = control
	c.wg.Go(c.readControl)
	c.wg.Go(c.acceptStreams)
	c.wg.Go(func() {
		<-mux.CloseChan()
		c.fail(errors.New("connection to the agent closed"))
	})
	if opts.Heartbeat > 0 {
		c.wg.Go(c.heartbeat)
	}
	return c, nil
}

// heartbeat pings every opts.Heartbeat until the connection ends. A ping
// that fails is only logged: yamux's keepalive is what notices a dead
// peer; the pings tell a live one that this client is still there.
func (c *Client) heartbeat() {
	t := time.NewTicker(c.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		// A ping in flight ends with the connection (fail closes its
		// reply channel), so the timeout only bounds a stalled peer.
		ctx, cancel := context.WithTimeout(context.Background(), max(2*c.opts.Heartbeat, 10*time.Second))
		if err := c.Ping(ctx); err != nil {
			c.log.Debug("heartbeat ping failed", "err", err)
		}
		cancel()
	}
}

func (c *Client) handshake(ctx context.Context) error {
	deadline := time.Now().Add(c.opts.HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if dc, ok := c.conn.(interface{ SetDeadline(time.Time) error }); ok {
		dc.SetDeadline(deadline)
		defer dc.SetDeadline(time.Time{})
	}
	hello := &wire.Hello{
		Protocol: wire.Current,
		Client: wire.ClientInfo{
			Name: c.opts.Name, Version: c.opts.Version, Session: c.opts.Session,
			Host: c.opts.Host, Tool: c.opts.Tool,
		},
		Capabilities: slices.DeleteFunc(slices.Clone(wire.AllCapabilities), func(cp wire.Capability) bool {
			return slices.Contains(c.opts.WithoutCapabilities, cp)
		}),
		Nonce: wire.NewNonce(),
	}
	if err := wire.WritePreamble(c.conn); err != nil {
		return fmt.Errorf("handshake with agent: %w", err)
	}
	if err := wire.WriteMessage(c.conn, 0, hello); err != nil {
		return fmt.Errorf("handshake with agent: %w", err)
	}
	if err := wire.ReadPreamble(c.conn); err != nil {
		return fmt.Errorf("handshake with agent: %w", err)
	}
	w, err := wire.ReadMessage[*wire.Welcome](c.conn, wire.MaxHandshakeFrameSize)
	if err != nil {
		return fmt.Errorf("agent refused the connection: %w", err)
	}
	if !wire.Current.CompatibleWith(w.Protocol) {
		return wire.Errorf(wire.CodeIncompatibleVersion,
			"agent speaks remocal protocol %s (agent version %s) but this client speaks %s; use a client and agent of the same major version",
			w.Protocol, w.Agent.Version, wire.Current)
	}
	// Nothing more goes out before the agent is known: a peer that is not
	// the agent gets only the hello.
	key := c.opts.Key
	switch {
	case key == nil && c.opts.TransportAuthenticated && wire.HasCapability(w.Capabilities, wire.CapOperator):
		c.welcome = *w
		return nil
	case key == nil && wire.HasCapability(w.Capabilities, wire.CapAuth):
		return wire.Errorf(wire.CodePermissionDenied,
			"the agent requires its key and this client was not given one")
	case key == nil && !c.opts.Unauthenticated:
		return &UnprovenAgentError{Why: "this client has no key for it and may not accept an agent that proves nothing"}
	case key == nil:
		c.welcome = *w
		return nil
	case !wire.HasCapability(w.Capabilities, wire.CapAuth) || w.Proof == nil:
		return &UnprovenAgentError{Why: "it offered no proof"}
	case !wire.CheckProof(wire.AgentProof(key, hello, w), w.Proof):
		return &UnprovenAgentError{Why: "its proof is wrong"}
	}
	if err := wire.WriteMessage(c.conn, 0, &wire.Auth{Proof: wire.ClientProof(key, hello, w)}); err != nil {
		return fmt.Errorf("handshake with agent: %w", err)
	}
	if _, err := wire.ReadMessage[*wire.AuthResult](c.conn, wire.MaxHandshakeFrameSize); err != nil {
		return fmt.Errorf("agent refused the connection: %w", err)
	}
	c.welcome = *w
	return nil
}

// Welcome returns what the agent said about itself and its target.
func (c *Client) Welcome() wire.Welcome { return c.welcome }

// Done is closed when the connection to the agent ends.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the client stopped, once Done is closed.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection and waits for the client's goroutines, including
// handlers of incoming traffic.
func (c *Client) Close() error {
	c.fail(errors.New("client closed"))
	c.wg.Wait()
	c.mu.Lock()
	subs := c.subs
	c.subs = map[string]*Subscription{}
	c.mu.Unlock()
	for _, s := range subs {
		closeHandler(s.handler)
	}
	return nil
}

func (c *Client) fail(err error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		pending := c.pending
		c.pending = nil
		c.mu.Unlock()
		for _, ch := range pending {
			close(ch)
		}
		if c.mux != nil {
			c.mux.Close()
		}
		c.conn.Close()
		close(c.done)
	})
}

func (c *Client) readControl() {
	for {
		env, err := wire.ReadEnvelope(c.control, wire.MaxFrameSize)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.log.Debug("control stream ended", "err", err)
			}
			c.fail(fmt.Errorf("agent connection lost: %w", err))
			return
		}
		if env.ID == 0 && env.Type == wire.TypeEvent {
			c.event(env)
			continue
		}
		c.mu.Lock()
		ch, ok := c.pending[env.ID]
		delete(c.pending, env.ID)
		c.mu.Unlock()
		if !ok {
			c.log.Warn("response to no pending request", "id", env.ID, "type", env.Type)
			continue
		}
		ch <- env
	}
}

// call sends a request and waits for its response.
func call[T wire.Message](ctx context.Context, c *Client, req wire.Message) (T, error) {
	var zero T
	id := c.nextID.Add(1)
	ch := make(chan *wire.Envelope, 1)
	c.mu.Lock()
	if c.pending == nil {
		err := c.err
		c.mu.Unlock()
		return zero, fmt.Errorf("agent connection is closed: %w", err)
	}
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		if c.pending != nil {
			delete(c.pending, id)
		}
		c.mu.Unlock()
	}
	env, err := wire.NewEnvelope(id, req)
	if err != nil {
		forget()
		return zero, err
	}
	c.writeMu.Lock()
	err = wire.WriteEnvelope(c.control, env)
	c.writeMu.Unlock()
	if err != nil {
		forget()
		return zero, fmt.Errorf("send %s: %w", req.MessageType(), err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return zero, fmt.Errorf("%s: agent connection lost: %w", req.MessageType(), c.Err())
		}
		return wire.DecodeAs[T](resp)
	case <-ctx.Done():
		forget()
		return zero, ctx.Err()
	}
}

// Call sends any control request and returns the agent's answer, validated:
// a result message, or the agent's *wire.Error. A broker (the operator)
// forwards its clients' requests with it.
func (c *Client) Call(ctx context.Context, req wire.Message) (wire.Message, error) {
	return call[wire.Message](ctx, c, req)
}

// Ping measures a round trip on the control stream.
func (c *Client) Ping(ctx context.Context) error {
	_, err := call[*wire.PingResult](ctx, c, &wire.Ping{})
	return err
}

// Env returns the target's environment variables selected by include and
// exclude globs (see protocol/glob).
func (c *Client) Env(ctx context.Context, include, exclude []string) (map[string]string, error) {
	res, err := call[*wire.EnvGetResult](ctx, c, &wire.EnvGet{Include: include, Exclude: exclude})
	if err != nil {
		return nil, err
	}
	return res.Vars, nil
}
