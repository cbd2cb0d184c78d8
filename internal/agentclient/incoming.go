package agentclient

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/remocal/remocal/protocol/wire"
)

// Handler serves the incoming traffic of a subscription. ServeIncoming runs
// on its own goroutine per connection or request and owns in.Stream.
type Handler interface {
	ServeIncoming(ctx context.Context, in *Incoming)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, in *Incoming)

func (f HandlerFunc) ServeIncoming(ctx context.Context, in *Incoming) { f(ctx, in) }

// Incoming is one delivery from the agent: a whole connection or one HTTP
// request, stolen or mirrored. Exactly one of Connection and Request is set.
//
// Stream carries, by kind:
//   - stolen connection: raw bytes both ways; the client is the server;
//   - HTTP/2 streams (Connection.Protocol wire.ProtocolH2C), stolen or
//     mirrored: raw bytes both ways, an h2c connection the agent opened as
//     its client; a mirror's answers are discarded by the agent;
//   - stolen HTTP/1 requests of one peer connection
//     (Connection.Protocol wire.ProtocolHTTP1, to clients listing
//     wire.CapHTTP1Conn): a request, then the client writes its response,
//     then the next request, until the agent closes the stream;
//   - mirrored connection: wire.Chunk frames from the agent (ReadChunk);
//   - stolen request: the HTTP request, then the client writes the response;
//   - mirrored request: the HTTP request; nothing is expected back.
type Incoming struct {
	Connection *wire.IncomingConnection
	Request    *wire.IncomingRequest
	Stream     net.Conn
}

// Mode is the delivery's mode.
func (in *Incoming) Mode() wire.Mode {
	if in.Request != nil {
		return in.Request.Mode
	}
	return in.Connection.Mode
}

// Source is the address of the peer that connected to the target.
func (in *Incoming) Source() string {
	if in.Request != nil {
		return in.Request.Source
	}
	return in.Connection.Source
}

// Subscription is a live subscription.
type Subscription struct {
	c       *Client
	id      string
	spec    wire.Subscribe
	handler Handler
	closed  atomic.Bool
	// lost is closed when the server ended the subscription (an event);
	// lostEvent says why.
	lost      chan struct{}
	lostEvent wire.Event

	// Deliveries counts connections and requests handed to the handler.
	Deliveries atomic.Uint64
}

// ID is the agent's name for the subscription.
func (s *Subscription) ID() string { return s.id }

// Spec is what was subscribed.
func (s *Subscription) Spec() wire.Subscribe { return s.spec }

// Closed reports whether the subscription is over: closed, lost, or its
// connection to the agent ended.
func (s *Subscription) Closed() bool {
	if s.closed.Load() {
		return true
	}
	select {
	case <-s.c.done:
		return true
	default:
		return false
	}
}

// Lost is closed when the server ended the subscription without being
// asked (an operator's subscription.lost event: another user took the
// port with an override). LostEvent then says who and why.
func (s *Subscription) Lost() <-chan struct{} { return s.lost }

// LostEvent is the event that ended the subscription, once Lost is closed.
func (s *Subscription) LostEvent() wire.Event {
	<-s.lost
	return s.lostEvent
}

// Subscribe asks the agent for incoming traffic and serves it with h. A
// conflict with another client's subscription is a *wire.Error with
// CodeConflict whose Holder names them.
func (c *Client) Subscribe(ctx context.Context, spec wire.Subscribe, h Handler) (*Subscription, error) {
	if err := spec.Validate(); err != nil {
		return nil, wire.Errorf(wire.CodeInvalid, "%v", err)
	}
	res, err := call[*wire.SubscribeResult](ctx, c, &spec)
	if err != nil {
		return nil, err
	}
	s := &Subscription{c: c, id: res.ID, spec: spec, handler: h, lost: make(chan struct{})}
	c.mu.Lock()
	c.subs[s.id] = s
	changed := c.subsChanged
	c.subsChanged = make(chan struct{})
	c.mu.Unlock()
	close(changed)
	return s, nil
}

// Close unsubscribes; the agent stops redirecting the port when no
// subscription is left there. Deliveries in progress continue to their end.
func (s *Subscription) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	s.c.mu.Lock()
	delete(s.c.subs, s.id)
	s.c.mu.Unlock()
	defer closeHandler(s.handler)
	_, err := call[*wire.UnsubscribeResult](ctx, s.c, &wire.Unsubscribe{ID: s.id})
	return err
}

// event handles a server-pushed event: a subscription.lost ends its
// subscription here (the server has already removed it, so nothing is
// sent), then Options.OnEvent sees it.
func (c *Client) event(env *wire.Envelope) {
	ev, err := wire.DecodeAs[*wire.Event](env)
	if err != nil {
		c.log.Warn("bad event from the server", "err", err)
		return
	}
	if ev.Kind == wire.EventSubscriptionLost && ev.Subscription != "" {
		c.mu.Lock()
		s := c.subs[ev.Subscription]
		delete(c.subs, ev.Subscription)
		c.mu.Unlock()
		if s != nil && !s.closed.Swap(true) {
			s.lostEvent = *ev
			close(s.lost)
			closeHandler(s.handler)
		}
	}
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(*ev)
	}
}

func closeHandler(h Handler) {
	if cl, ok := h.(io.Closer); ok {
		cl.Close()
	}
}

// subscriptionWait bounds how long a delivery waits for its subscription to
// be registered: the agent may route traffic the moment it has answered the
// subscribe request, before this side has processed the answer.
const subscriptionWait = 5 * time.Second

func (c *Client) lookupSubscription(id string) *Subscription {
	timeout := time.NewTimer(subscriptionWait)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		s, changed := c.subs[id], c.subsChanged
		c.mu.Unlock()
		if s != nil {
			return s
		}
		select {
		case <-changed:
		case <-timeout.C:
			return nil
		case <-c.done:
			return nil
		}
	}
}

// acceptStreams dispatches agent-opened streams to subscription handlers.
func (c *Client) acceptStreams() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.done
		cancel()
	}()
	for {
		stream, err := c.mux.AcceptStream()
		if err != nil {
			return
		}
		c.wg.Go(func() { c.serveIncoming(ctx, stream) })
	}
}

func (c *Client) serveIncoming(ctx context.Context, stream net.Conn) {
	in, subID, err := readIncomingHeader(stream)
	if err != nil {
		c.log.Warn("bad incoming stream from agent", "err", err)
		stream.Close()
		return
	}
	s := c.lookupSubscription(subID)
	if s == nil || s.closed.Load() {
		// Unsubscribed while the agent was already delivering: refuse, the
		// agent then treats it like an unreachable client.
		stream.Close()
		return
	}
	s.Deliveries.Add(1)
	s.handler.ServeIncoming(ctx, in)
}

func readIncomingHeader(stream net.Conn) (*Incoming, string, error) {
	stream.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer stream.SetReadDeadline(time.Time{})
	env, err := wire.ReadEnvelope(stream, wire.MaxHandshakeFrameSize)
	if err != nil {
		return nil, "", err
	}
	msg, err := env.Decode()
	if err != nil {
		return nil, "", err
	}
	switch m := msg.(type) {
	case *wire.IncomingConnection:
		return &Incoming{Connection: m, Stream: stream}, m.Subscription, nil
	case *wire.IncomingRequest:
		return &Incoming{Request: m, Stream: stream}, m.Subscription, nil
	}
	return nil, "", fmt.Errorf("unexpected stream header %s", env.Type)
}
