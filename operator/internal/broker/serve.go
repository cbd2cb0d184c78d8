package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sourcegraph/conc"

	"github.com/remocal/remocal/internal/muxwrite"
	"github.com/remocal/remocal/internal/relay"
	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/policy"
	"github.com/remocal/remocal/protocol/wire"
)

const (
	handshakeTimeout = 10 * time.Second
	// maxConcurrentRequests and maxClientStreams bound one client as an
	// agent bounds its clients (agent/session.go).
	maxConcurrentRequests = 64
	maxClientStreams      = 1024
	// endGrace is how long a client told that its session ended has to
	// read the event and close before the operator closes the connection.
	endGrace = 5 * time.Second
)

// Serve implements backend.Broker: it runs one client connection until it
// ends. The session it opens or resumes outlives it by the session TTL.
func (b *Broker) Serve(ctx context.Context, conn net.Conn, who operator.UserInfo, namespace, target string) {
	start := time.Now()
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	hello, err := readHello(conn)
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			reject(conn, we)
		}
		b.log.Info("client handshake failed", "user", who.Username, "err", err)
		return
	}
	conn.SetDeadline(time.Time{})
	s, resumed, err := b.attach(ctx, who, namespace, target, hello, start)
	if err != nil {
		reject(conn, toWire(err))
		b.log.Info("session refused", "user", who.Username, "target", namespace+"/"+target, "err", err)
		return
	}
	s.serveConn(ctx, conn, resumed, hello.Capabilities)
}

func readHello(conn net.Conn) (*wire.Hello, error) {
	if err := wire.ReadPreamble(conn); err != nil {
		if errors.Is(err, wire.ErrNotRemocal) {
			return nil, wire.Errorf(wire.CodeInvalid, "this is remocal's operator; the client did not speak the remocal protocol")
		}
		return nil, err
	}
	hello, err := wire.ReadMessage[*wire.Hello](conn, wire.MaxHandshakeFrameSize)
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			return nil, wire.Errorf(we.Code, "bad hello: %s", we.Message)
		}
		return nil, err
	}
	if !wire.Current.CompatibleWith(hello.Protocol) {
		return nil, wire.Errorf(wire.CodeIncompatibleVersion,
			"client speaks remocal protocol %s but the operator speaks %s; use a client of the operator's major version", hello.Protocol, wire.Current)
	}
	return hello, nil
}

func reject(conn net.Conn, e *wire.Error) {
	conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	wire.WritePreamble(conn)
	wire.WriteEnvelope(conn, wire.ErrorEnvelope(0, e))
}

// toWire gives an error the wire code a client can react to.
func toWire(err error) *wire.Error {
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		return we
	case errors.Is(err, backend.ErrNotFound):
		return wire.Errorf(wire.CodeNotFound, "%v", err)
	}
	return wire.Errorf(wire.CodeUnavailable, "%v", err)
}

// attach finds the session the hello resumes, or starts a new one. A
// session is resumed only by the same user, on the same target, while it
// lives; a still-connected one is taken over (its connection may be dead
// without the operator having noticed yet). A name this replica does not
// know is a session the previous leader served (the operator's replicas
// share no state): the new session takes that name, so the client and
// `remocal sessions` see one session across the handover, and the client
// takes its ports again by subscribing again.
func (b *Broker) attach(ctx context.Context, who operator.UserInfo, ns, target string, hello *wire.Hello, start time.Time) (s *session, resumed bool, err error) {
	adopt := ""
	if name := hello.Client.Session; name != "" {
		s := b.reg.get(ns, name)
		if s != nil && s.target == target && s.user.Username == who.Username {
			if s.takeOver(hello) {
				s.log.Info("client resumed the session")
				return s, true, nil
			}
		}
		if s == nil && validSessionName(name) {
			if reason, killed := b.reg.killedHere(ns, name); killed {
				// Not a handover: it was killed here and the client had
				// not heard yet.
				return nil, false, wire.Errorf(wire.CodeNotFound, "session %s ended: %s; start a new session", name, reason)
			}
			adopt = name
		}
	}
	pt, err := b.policyTarget(ctx, ns, target)
	if err != nil {
		return nil, false, err
	}
	pols, err := b.policiesFor(pt)
	if err != nil {
		d := asDenial(err)
		b.recordConnect(who, ns, target, hello, DecisionDeny, d)
		return nil, false, d.Wire()
	}
	s, err = b.newSession(ctx, who, ns, target, hello, adopt, pt, pols)
	if err != nil {
		return nil, false, err
	}
	// Duration is the connect latency: the hello to a registered session
	// (pods listed, policies evaluated).
	s.record(Record{Action: ActionConnect, Decision: DecisionAllow, What: "start session", Reason: policyNames(pols), Duration: time.Since(start)})
	s.phase = operator.PhaseActive
	s.lastHeartbeat = time.Now()
	if !b.reg.publish(backend.Added, s) {
		// Another connection adopted the name meanwhile.
		s.rename(newSessionName())
		b.reg.publish(backend.Added, s)
	}
	if adopt != "" && s.name == adopt {
		s.log.Info("session taken over from the previous leader", "client", hello.Client.Name, "pods", podNames(s.pods))
	} else {
		s.log.Info("session started", "client", hello.Client.Name, "pods", podNames(s.pods))
	}
	return s, false, nil
}

// takeOver prepares a live session for a new connection: an old one is
// closed and its disconnect awaited. False if the session ended.
func (s *session) takeOver(hello *wire.Hello) bool {
	s.mu.Lock()
	old := s.cc
	s.mu.Unlock()
	if old != nil {
		old.close()
		<-old.done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.cc != nil {
		return false
	}
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.client = clientInfo(hello)
	s.expiresAt = time.Time{}
	s.phase = operator.PhaseActive
	s.lastHeartbeat = time.Now()
	return true
}

// clientConn is one connection of a session's client.
type clientConn struct {
	s    *session
	conn net.Conn
	// caps are the client's, from its hello: the agents see the
	// operator's, so deliveries an older client cannot read stop here.
	caps    []wire.Capability
	mux     *yamux.Session
	writeMu sync.Mutex
	control net.Conn
	ctx     context.Context
	cancel  context.CancelFunc
	wg      conc.WaitGroup
	// done is closed once the connection's goroutines ended and the
	// session knows it is gone.
	done      chan struct{}
	closeOnce sync.Once
}

func (cc *clientConn) close() {
	cc.closeOnce.Do(func() {
		cc.cancel()
		if cc.mux != nil {
			cc.mux.Close()
		}
		cc.conn.Close()
	})
}

// serveConn welcomes the client and serves it until the connection ends.
func (s *session) serveConn(ctx context.Context, conn net.Conn, resumed bool, caps []wire.Capability) {
	cc := &clientConn{s: s, conn: conn, caps: caps, done: make(chan struct{})}
	cc.ctx, cc.cancel = context.WithCancel(ctx)
	defer close(cc.done)
	defer cc.close()
	// fail ends a connection that never got going: a new session ends
	// with it, a resumed one is disconnected again.
	fail := func(why error) {
		if !resumed {
			s.end(fmt.Sprintf("the client could not be served: %v", why))
			return
		}
		s.mu.Lock()
		s.cc = cc
		s.mu.Unlock()
		s.disconnect(cc)
	}
	primary, pod, err := s.primaryAgent(ctx)
	if err != nil {
		reject(conn, toWire(err))
		fail(err)
		return
	}
	if err := s.welcome(conn, primary.Welcome(), pod); err != nil {
		s.log.Info("welcome the client", "err", err)
		fail(err)
		return
	}
	mux, err := yamux.Server(muxwrite.Wrap(conn), wire.MuxConfig())
	if err != nil {
		return
	}
	cc.mux = mux
	s.mu.Lock()
	ended := s.ended
	if !ended {
		s.cc = cc
	}
	s.mu.Unlock()
	if ended {
		return
	}
	defer s.disconnect(cc)
	defer cc.wg.Wait()
	defer cc.close()
	s.b.reg.publish(backend.Modified, s)
	// The other pods' agents, before the client subscribes.
	s.mu.Lock()
	pods := slices.Clone(s.pods)
	s.mu.Unlock()
	s.b.goTracked(func() { s.warm(pods) })
	control, err := acceptWithin(mux, handshakeTimeout)
	if err != nil {
		return
	}
	cc.writeMu.Lock()
	cc.control = control
	cc.writeMu.Unlock()
	cc.wg.Go(cc.acceptStreams)
	cc.controlLoop()
}

func acceptWithin(mux *yamux.Session, d time.Duration) (net.Conn, error) {
	t := time.AfterFunc(d, func() { mux.Close() })
	defer t.Stop()
	return mux.AcceptStream()
}

func (s *session) welcome(conn net.Conn, agent wire.Welcome, primary Pod) error {
	caps := slices.DeleteFunc(slices.Clone(agent.Capabilities), func(c wire.Capability) bool { return c == wire.CapAuth })
	caps = append(caps, wire.CapOperator)
	if s.b.cfg.Splits != nil {
		caps = append(caps, wire.CapQueueSplit)
	}
	s.mu.Lock()
	info := &wire.OperatorInfo{Session: s.name, Pods: podNames(s.pods), Primary: primary.Name, PrimaryReason: s.primaryReason}
	s.mu.Unlock()
	w := &wire.Welcome{
		Protocol:     wire.Current,
		Agent:        wire.AgentInfo{Version: s.b.cfg.Version, PID: os.Getpid()},
		Capabilities: caps,
		Target:       wire.TargetInfo{Name: targetRef(s.target), PID: agent.Target.PID, Hostname: agent.Target.Hostname},
		ClientID:     s.name,
		Operator:     info,
	}
	conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	defer conn.SetWriteDeadline(time.Time{})
	if err := wire.WritePreamble(conn); err != nil {
		return err
	}
	return wire.WriteMessage(conn, 0, w)
}

// controlLoop reads requests and answers each on its own goroutine.
func (cc *clientConn) controlLoop() {
	sem := make(chan struct{}, maxConcurrentRequests)
	for {
		payload, err := wire.ReadFrame(cc.control, wire.MaxFrameSize)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, yamux.ErrSessionShutdown) && !errors.Is(err, net.ErrClosed) {
				cc.reply(wire.ErrorEnvelope(0, err))
			}
			return
		}
		cc.s.heard()
		env, err := wire.DecodeEnvelope(payload)
		if err != nil {
			cc.reply(wire.ErrorEnvelope(0, err))
			continue
		}
		msg, err := env.Decode()
		if err != nil {
			cc.reply(wire.ErrorEnvelope(env.ID, err))
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-cc.ctx.Done():
			return
		}
		cc.wg.Go(func() {
			defer func() { <-sem }()
			res, err := cc.s.handle(cc.ctx, cc, msg)
			if err != nil {
				cc.reply(wire.ErrorEnvelope(env.ID, toWire(err)))
				return
			}
			out, err := wire.NewEnvelope(env.ID, res)
			if err != nil {
				out = wire.ErrorEnvelope(env.ID, err)
			}
			cc.reply(out)
		})
	}
}

// heard records that the client was heard from (its lease heartbeat).
func (s *session) heard() {
	s.mu.Lock()
	s.lastHeartbeat = time.Now()
	s.mu.Unlock()
}

func (cc *clientConn) reply(env *wire.Envelope) {
	cc.writeMu.Lock()
	defer cc.writeMu.Unlock()
	if cc.control == nil {
		return
	}
	cc.control.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := wire.WriteEnvelope(cc.control, env); err != nil {
		cc.s.log.Debug("write to client", "err", err)
	}
}

// event pushes a server event to the client.
func (cc *clientConn) event(ev *wire.Event) {
	env, err := wire.NewEnvelope(0, ev)
	if err != nil {
		return
	}
	cc.reply(env)
}

// endWith tells the client ev, gives it endGrace to close, then closes;
// on a goroutine of the broker's, or inline once the broker is closing.
func (cc *clientConn) endWith(ev *wire.Event) {
	end := func() {
		cc.event(ev)
		cc.writeMu.Lock()
		if cc.control != nil {
			cc.control.Close() // FIN after the event: the client reads it, then EOF
		}
		cc.writeMu.Unlock()
		t := time.NewTimer(endGrace)
		defer t.Stop()
		var closed <-chan struct{}
		if cc.mux != nil {
			closed = cc.mux.CloseChan()
		}
		select {
		case <-closed:
		case <-t.C:
		}
		cc.close()
	}
	if !cc.s.b.goTracked(end) {
		end()
	}
}

// handle answers one control request.
func (s *session) handle(ctx context.Context, cc *clientConn, msg wire.Message) (wire.Message, error) {
	switch m := msg.(type) {
	case *wire.Subscribe:
		return s.subscribe(ctx, cc, m)
	case *wire.Unsubscribe:
		return s.unsubscribe(ctx, m)
	case *wire.QueueSplit:
		if s.b.cfg.Splits == nil {
			return nil, wire.Errorf(wire.CodeUnsupported, "this operator does not split queues (it was started without queue splitting); remove queueSplits from the configuration")
		}
		if werr := s.checkQueueSplit(m); werr != nil {
			return nil, werr
		}
		res, err := s.b.cfg.Splits.Split(ctx, s.ns, s.name, s.user, m)
		s.recordSplit(m, err)
		if err == nil {
			s.b.reg.publish(backend.Modified, s)
		}
		return res, err
	case *wire.Ping, *wire.EnvGet, *wire.FileRead, *wire.FileStat, *wire.FileReadlink, *wire.FileReaddir, *wire.FileAccess:
		msg, werr := s.checkRequest(msg)
		if werr != nil {
			return nil, werr
		}
		c, pod, err := s.primaryAgent(ctx)
		if err != nil {
			return nil, err
		}
		res, err := c.Call(ctx, msg)
		if err != nil {
			var we *wire.Error
			if errors.As(err, &we) || ctx.Err() != nil {
				return nil, err
			}
			return nil, wire.Errorf(wire.CodeUnavailable, "the agent of pod %s (the session's primary) did not answer: %v", pod.Name, err)
		}
		s.filterResult(res)
		return res, nil
	default:
		return nil, wire.Errorf(wire.CodeUnsupported, "%s is not a request the operator answers", msg.MessageType())
	}
}

// acceptStreams serves client-opened streams: dials through the primary.
func (cc *clientConn) acceptStreams() {
	sem := make(chan struct{}, maxClientStreams)
	for {
		select {
		case sem <- struct{}{}:
		case <-cc.ctx.Done():
			return
		}
		st, err := cc.mux.AcceptStream()
		if err != nil {
			return
		}
		cc.wg.Go(func() {
			defer func() { <-sem }()
			cc.serveStream(st)
		})
	}
}

func (cc *clientConn) serveStream(st net.Conn) {
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(handshakeTimeout))
	env, err := wire.ReadEnvelope(st, wire.MaxHandshakeFrameSize)
	st.SetReadDeadline(time.Time{})
	if err != nil {
		if !errors.Is(err, io.EOF) {
			wire.WriteEnvelope(st, wire.ErrorEnvelope(0, err))
		}
		return
	}
	dial, err := wire.DecodeAs[*wire.Dial](env)
	if err != nil {
		wire.WriteEnvelope(st, wire.ErrorEnvelope(0, wire.Errorf(wire.CodeUnsupported, "a stream cannot start with %s: %v", env.Type, err)))
		return
	}
	ctx, cancel := context.WithTimeout(cc.ctx, time.Minute)
	defer cancel()
	if werr := cc.s.checkDial(ctx, dial); werr != nil {
		wire.WriteEnvelope(st, wire.ErrorEnvelope(0, werr))
		return
	}
	c, _, err := cc.s.primaryAgent(ctx)
	if err != nil {
		wire.WriteEnvelope(st, wire.ErrorEnvelope(0, err))
		return
	}
	up, res, err := c.DialStream(ctx, dial)
	if err != nil {
		wire.WriteEnvelope(st, wire.ErrorEnvelope(0, toWireDial(err)))
		return
	}
	defer up.Close()
	if err := wire.WriteMessage(st, 0, res); err != nil {
		relay.Abort(up)
		return
	}
	cc.s.counters.outConns.Add(1)
	if ap, err := policy.DialAddr(dial.Address); err == nil {
		cc.s.dials.add(st, ap)
		defer cc.s.dials.remove(st)
	}
	out := &cc.s.b.traffic[modeOutgoing]
	out.requests.Add(1)
	var n atomic.Uint64
	relay.Conns(counting(counting(st, &cc.s.counters.bytesOut), &n), counting(counting(up, &cc.s.counters.bytesIn), &n))
	out.bytes.Add(n.Load())
}

// countingConn counts the bytes read from a stream as they pass, so a
// session's counters move while a long connection lasts. Both ends the
// broker relays are yamux streams, whose Close is the half-close relay
// wants where a socket would have CloseWrite.
type countingConn struct {
	net.Conn
	n *atomic.Uint64
}

func counting(c net.Conn, n *atomic.Uint64) net.Conn { return countingConn{c, n} }

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(uint64(n))
	return n, err
}

func toWireDial(err error) *wire.Error {
	var we *wire.Error
	if errors.As(err, &we) {
		return we
	}
	return wire.Errorf(wire.CodeUnavailable, "dial through the target's agent: %v", err)
}

// openStream opens an operator-initiated stream to the client, giving up
// when ctx ends (yamux's OpenStream waits for the peer's window).
func (cc *clientConn) openStream(ctx context.Context) (net.Conn, error) {
	type result struct {
		st  *yamux.Stream
		err error
	}
	ch := make(chan result, 1)
	go func() {
		st, err := cc.mux.OpenStream()
		ch <- result{st, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("open a stream to the client: %w", r.err)
		}
		return r.st, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.st != nil {
				r.st.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// recordConnect audits a connect refused before any session existed.
func (b *Broker) recordConnect(who operator.UserInfo, ns, target string, hello *wire.Hello, decision string, d *policy.Denial) {
	if b.cfg.Auditor == nil {
		return
	}
	r := Record{Time: time.Now(), Action: ActionConnect, User: who, From: clientInfo(hello), Namespace: ns, Target: target,
		What: "start session", Decision: decision}
	if d != nil {
		r.Action, r.Reason, r.Policy, r.Rule = ActionPolicyDenial, d.Message, &d.Policy, d.Rule
	}
	b.cfg.Auditor.Record(r)
}

// policyNames lists the policies that apply, for the connect record.
func policyNames(set policy.Set) string {
	if len(set) == 0 {
		return ""
	}
	names := make([]string, len(set))
	for i, p := range set {
		names[i] = p.Ref.String()
	}
	return "policies: " + strings.Join(names, ", ")
}
