package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sourcegraph/conc"

	"github.com/remocal/remocal/internal/muxwrite"
	"github.com/remocal/remocal/protocol/wire"
)

const (
	handshakeTimeout = 10 * time.Second
	// maxConcurrentRequests bounds the control requests of one client in
	// flight at once; further requests wait, they are not refused.
	maxConcurrentRequests = 64
	// maxClientStreams bounds the streams a client has open at once (each
	// an outgoing connection of the local program); yamux v0.1.2 has no
	// such setting. At the bound the agent stops accepting: yamux queues
	// up to its AcceptBacklog more and resets the rest, which the client
	// sees as a failed dial. 1024 is above what a program under
	// development keeps open (connection pools, fan-out), and with the
	// stream window bounds what one client can make the agent buffer.
	maxClientStreams = 1024
)

// session is one connected client.
type session struct {
	agent *Agent
	conn  io.ReadWriteCloser
	id    string
	name  string
	// resumes is the client's remocal session ID (wire.ClientInfo.Session):
	// a new connection with the same ID replaces this one.
	resumes string
	// caps are the capabilities of the client's hello.
	caps []wire.Capability
	log  *slog.Logger

	// mux is set once the handshake is done; close (from the agent's
	// shutdown or a superseding connection) may race with that.
	muxMu  sync.Mutex
	mux    *yamux.Session
	closed bool
	wg     conc.WaitGroup

	writeMu sync.Mutex // serialises frames on the control stream
	control net.Conn

	ctx       context.Context // ends when the client disconnects
	closeOnce sync.Once
}

func (a *Agent) newSession(conn io.ReadWriteCloser) *session {
	id := fmt.Sprintf("c%d", a.nextID.Add(1))
	return &session{agent: a, conn: conn, id: id, log: a.log.With("client", id)}
}

// ID, Name and HasCapability make a session an incoming.Client.
func (s *session) ID() string   { return s.id }
func (s *session) Name() string { return s.name }

// HasCapability reports whether the client listed c in its hello. Set
// before the session serves anything, then only read.
func (s *session) HasCapability(c wire.Capability) bool { return wire.HasCapability(s.caps, c) }

// OpenStream opens an agent-initiated stream to the client.
func (s *session) OpenStream(ctx context.Context) (net.Conn, error) {
	s.muxMu.Lock()
	mux := s.mux
	s.muxMu.Unlock()
	if mux == nil {
		return nil, errors.New("client session not established")
	}
	type result struct {
		st  *yamux.Stream
		err error
	}
	ch := make(chan result, 1)
	go func() {
		st, err := mux.OpenStream()
		ch <- result{st, err}
	}()
	select {
	case r := <-ch:
		return r.st, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.st != nil {
				r.st.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func (s *session) close() {
	s.closeOnce.Do(func() {
		s.muxMu.Lock()
		s.closed = true
		mux := s.mux
		s.muxMu.Unlock()
		if mux != nil {
			mux.Close()
		}
		s.conn.Close()
	})
}

func (s *session) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.ctx = ctx
	defer s.close()
	if err := s.handshake(); err != nil {
		s.log.Info("handshake failed", "err", err)
		return
	}
	s.log = s.log.With("name", s.name)
	s.log.Info("client connected")
	defer s.log.Info("client disconnected")

	mux, err := yamux.Server(muxwrite.Wrap(s.conn), wire.MuxConfig())
	if err != nil {
		s.log.Error("start stream multiplexer", "err", err)
		return
	}
	s.muxMu.Lock()
	closed := s.closed
	if !closed {
		s.mux = mux
	}
	s.muxMu.Unlock()
	if closed { // closed during the handshake: the client is gone already
		mux.Close()
		return
	}
	stop := context.AfterFunc(ctx, s.close)
	defer stop()
	defer s.wg.Wait()
	defer s.close()

	control, err := mux.AcceptStream()
	if err != nil {
		return
	}
	s.control = control
	s.wg.Go(func() { s.acceptStreams() })
	s.controlLoop(ctx)
}

// handshake checks the preamble and hello and answers with a welcome, or
// with an error frame that tells the client what is wrong. An agent with a
// key proves it in the welcome and then requires the client's proof
// (wire/auth.go); until that arrives the client is served nothing and its
// session's other connections are left alone.
func (s *session) handshake() (err error) {
	if d, ok := s.conn.(interface{ SetDeadline(time.Time) error }); ok {
		d.SetDeadline(time.Now().Add(handshakeTimeout))
		defer d.SetDeadline(time.Time{})
	}
	defer func() {
		if err != nil {
			s.agent.stats.refused.Add(1)
		}
	}()
	reject := func(e *wire.Error) error {
		wire.WritePreamble(s.conn)
		wire.WriteEnvelope(s.conn, wire.ErrorEnvelope(0, e))
		return e
	}
	if err := wire.ReadPreamble(s.conn); err != nil {
		if errors.Is(err, wire.ErrNotRemocal) {
			return reject(wire.Errorf(wire.CodeInvalid, "this is a remocal agent; the client did not speak the remocal protocol"))
		}
		return err
	}
	hello, err := wire.ReadMessage[*wire.Hello](s.conn, wire.MaxHandshakeFrameSize)
	if err != nil {
		if we := (*wire.Error)(nil); errors.As(err, &we) {
			return reject(wire.Errorf(we.Code, "bad hello: %s", we.Message))
		}
		return err
	}
	if !wire.Current.CompatibleWith(hello.Protocol) {
		return reject(wire.Errorf(wire.CodeIncompatibleVersion,
			"client speaks remocal protocol %s but this agent (remocal %s) speaks %s; use a client and agent of the same major version",
			hello.Protocol, s.agent.cfg.Version, wire.Current))
	}
	key := s.agent.cfg.Key
	if key != nil && hello.Nonce == nil {
		return reject(wire.Errorf(wire.CodePermissionDenied,
			"this agent serves only clients that prove they hold its key, and the client (protocol %s) sent no challenge; use a remocal client of version %s or later",
			hello.Protocol, wire.Current))
	}
	s.name = hello.Client.Name
	s.resumes = hello.Client.Session
	s.caps = hello.Capabilities
	welcome := s.agent.welcome(s.id)
	if key == nil {
		// Before the welcome: once the client has it, it may subscribe
		// again to what its previous connection held.
		s.agent.supersede(s)
		if err := wire.WritePreamble(s.conn); err != nil {
			return err
		}
		s.agent.stats.clients.Add(1)
		return wire.WriteMessage(s.conn, 0, welcome)
	}
	welcome.Nonce = wire.NewNonce()
	welcome.Proof = wire.AgentProof(key, hello, welcome)
	if err := wire.WritePreamble(s.conn); err != nil {
		return err
	}
	if err := wire.WriteMessage(s.conn, 0, welcome); err != nil {
		return err
	}
	auth, err := wire.ReadMessage[*wire.Auth](s.conn, wire.MaxHandshakeFrameSize)
	if err != nil {
		if we := (*wire.Error)(nil); errors.As(err, &we) && we.Code != wire.CodePermissionDenied {
			// A broken frame, or another message than auth.
			wire.WriteEnvelope(s.conn, wire.ErrorEnvelope(0, wire.Errorf(wire.CodePermissionDenied,
				"this agent serves only clients that prove they hold its key; expected an auth frame (%s)", we.Message)))
			return fmt.Errorf("client sent no proof of the key: %w", err)
		}
		// The client gave up (it did not like our proof, or has no key).
		return fmt.Errorf("client sent no proof of the key: %w", err)
	}
	if !wire.CheckProof(wire.ClientProof(key, hello, welcome), auth.Proof) {
		e := wire.Errorf(wire.CodePermissionDenied,
			"the client did not prove it holds this agent's key; only the remocal sessions that created the agent, or were given its key, may use it")
		wire.WriteEnvelope(s.conn, wire.ErrorEnvelope(0, e))
		return e
	}
	s.agent.supersede(s)
	s.agent.stats.clients.Add(1)
	return wire.WriteMessage(s.conn, 0, &wire.AuthResult{})
}

// acceptStreams serves client-opened streams (dials).
func (s *session) acceptStreams() {
	sem := make(chan struct{}, maxClientStreams)
	for {
		select {
		case sem <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		stream, err := s.mux.AcceptStream()
		if err != nil {
			return
		}
		s.wg.Go(func() {
			defer func() { <-sem }()
			s.serveStream(stream)
		})
	}
}

func (s *session) serveStream(stream *yamux.Stream) {
	stream.SetReadDeadline(time.Now().Add(handshakeTimeout))
	env, err := wire.ReadEnvelope(stream, wire.MaxHandshakeFrameSize)
	stream.SetReadDeadline(time.Time{})
	if err != nil {
		if !errors.Is(err, io.EOF) {
			wire.WriteEnvelope(stream, wire.ErrorEnvelope(0, err))
		}
		stream.Close()
		return
	}
	msg, err := env.Decode()
	if err != nil {
		wire.WriteEnvelope(stream, wire.ErrorEnvelope(0, err))
		stream.Close()
		return
	}
	switch m := msg.(type) {
	case *wire.Dial:
		s.serveDial(s.ctx, stream, m)
	default:
		wire.WriteEnvelope(stream, wire.ErrorEnvelope(0, wire.Errorf(wire.CodeUnsupported, "a stream cannot start with %s", env.Type)))
		stream.Close()
	}
}

// controlLoop reads requests and answers each on its own goroutine, so a
// slow request never holds up the ones behind it.
func (s *session) controlLoop(ctx context.Context) {
	sem := make(chan struct{}, maxConcurrentRequests)
	for {
		payload, err := wire.ReadFrame(s.control, wire.MaxFrameSize)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, yamux.ErrStreamClosed) || errors.Is(err, yamux.ErrSessionShutdown) {
				return
			}
			s.log.Info("broken frame on the control stream; closing the client", "err", err)
			s.reply(wire.ErrorEnvelope(0, err))
			return
		}
		env, err := wire.DecodeEnvelope(payload)
		if err != nil {
			// The frame was delimited correctly, so the stream is still in
			// sync: answer and carry on.
			s.reply(wire.ErrorEnvelope(0, err))
			continue
		}
		msg, err := env.Decode()
		if err != nil {
			// The frame was delimited correctly, so the stream is still in
			// sync: answer and carry on.
			s.reply(wire.ErrorEnvelope(env.ID, err))
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		s.wg.Go(func() {
			defer func() { <-sem }()
			s.answer(ctx, env.ID, msg)
		})
	}
}

func (s *session) answer(ctx context.Context, id uint64, msg wire.Message) {
	s.agent.stats.requests.Add(1)
	res, err := s.handle(ctx, msg)
	if err != nil {
		s.reply(wire.ErrorEnvelope(id, err))
		return
	}
	env, err := wire.NewEnvelope(id, res)
	if err != nil {
		env = wire.ErrorEnvelope(id, err)
	}
	s.reply(env)
}

func (s *session) reply(env *wire.Envelope) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.control.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := wire.WriteEnvelope(s.control, env); err != nil {
		s.log.Debug("write reply", "err", err)
	}
}
