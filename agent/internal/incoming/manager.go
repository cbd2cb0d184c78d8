// Package incoming delivers a target's incoming TCP traffic to remocal
// clients. Subscribed ports are redirected (agent/internal/redirect) to one listener
// the manager keeps inside the target's network namespace; each accepted
// connection is then mirrored, stolen whole, routed request by request
// (HTTP filters) or passed through to the application.
package incoming

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sourcegraph/conc"

	"github.com/remocal/remocal/agent/internal/redirect"
	"github.com/remocal/remocal/internal/netns"
	"github.com/remocal/remocal/protocol/wire"
)

// Client is a connected remocal client as the manager needs to see it.
type Client interface {
	// ID is the agent-assigned identifier, unique per agent.
	ID() string
	// Name is the human name from the client's hello, used in conflicts.
	Name() string
	// OpenStream opens a new stream to the client.
	OpenStream(ctx context.Context) (net.Conn, error)
}

// Manager owns the redirect table, the redirect listener and every
// subscription of one agent.
type Manager struct {
	ns  *netns.NS
	log *slog.Logger
	// nodeAddrs are the node's addresses as the target sees them: where
	// kubelet probes come from (probes.go). Set once, by New.
	nodeAddrs []netip.Addr

	ctx    context.Context
	cancel context.CancelFunc
	wg     conc.WaitGroup

	mu       sync.Mutex
	closed   bool
	table    *redirect.Table
	listener net.Listener
	lisPort  uint16
	subs     map[string]*subscription
	byPort   map[uint16][]*subscription // in subscription order
	conns    map[net.Conn]struct{}
	// redirected holds every port this manager has redirected to its
	// listener: only connections originally addressed to one of them are
	// served (serveConn). Ports stay after their last subscription ends, so
	// that a connection redirected just before still reaches the
	// application.
	redirected map[uint16]bool

	nextSub  atomic.Uint64
	nextConn atomic.Uint64
}

type subscription struct {
	id     string
	seq    uint64
	client Client
	port   uint16
	mode   wire.Mode
	spec   wire.HTTPFilter
	filter *wire.CompiledFilter // nil: every connection

	connections atomic.Uint64
	requests    atomic.Uint64
	// removed is set when the subscription ends, for streams kept open
	// for it (stolen.go) to notice.
	removed atomic.Bool
}

func (s *subscription) holder() *wire.Holder {
	h := &wire.Holder{Client: s.client.Name(), Subscription: s.id, Port: s.port, Mode: s.mode}
	if s.filter != nil {
		spec := s.spec
		h.Filter = &spec
	}
	return h
}

func (s *subscription) hasHeaders() bool { return len(s.spec.Headers) > 0 }

// New returns a manager for the namespace. Nothing is created in it until the
// first subscription. HTTP requests from nodeAddrs (the node, as the
// target sees it) that are kubelet probes are never stolen.
func New(ns *netns.NS, log *slog.Logger, nodeAddrs []netip.Addr) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		ns: ns, log: log, nodeAddrs: unmappedAddrs(nodeAddrs), ctx: ctx, cancel: cancel,
		subs: map[string]*subscription{}, byPort: map[uint16][]*subscription{}, conns: map[net.Conn]struct{}{},
		redirected: map[uint16]bool{},
	}
}

// Subscribe adds a subscription for c, redirecting the port if it is the
// first one there.
func (m *Manager) Subscribe(ctx context.Context, c Client, req *wire.Subscribe) (string, error) {
	var compiled *wire.CompiledFilter
	if req.Filter != nil {
		var err error
		if compiled, err = req.Filter.Compile(); err != nil {
			return "", wire.Errorf(wire.CodeInvalid, "filter: %v", err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", wire.Errorf(wire.CodeUnavailable, "the agent is shutting down")
	}
	if holder := conflictWith(m.byPort[req.Port], req.Mode, req.Filter); holder != nil {
		return "", conflictError(req.Port, holder, req.Filter)
	}
	if err := m.ensureRedirectLocked(ctx); err != nil {
		return "", err
	}
	if req.Port == m.lisPort {
		return "", wire.Errorf(wire.CodeInvalid, "port %d is the agent's own redirect listener in the target's namespace, not a port of the application; subscribe to the port the application listens on", req.Port)
	}
	seq := m.nextSub.Add(1)
	s := &subscription{id: fmt.Sprintf("s%d", seq), seq: seq, client: c, port: req.Port, mode: req.Mode, filter: compiled}
	if req.Filter != nil {
		s.spec = *req.Filter
	}
	m.subs[s.id] = s
	m.byPort[s.port] = append(m.byPort[s.port], s)
	if err := m.syncLocked(); err != nil {
		m.removeLocked(s)
		return "", err
	}
	m.log.Info("subscribed", "subscription", s.id, "client", c.Name(), "port", s.port, "mode", s.mode, "filter", s.spec.String())
	return s.id, nil
}

// Unsubscribe removes one of c's subscriptions.
func (m *Manager) Unsubscribe(c Client, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.subs[id]
	if !ok || s.client.ID() != c.ID() {
		return wire.Errorf(wire.CodeNotFound, "no subscription %q of this client", id)
	}
	m.removeLocked(s)
	m.log.Info("unsubscribed", "subscription", id, "client", c.Name(), "port", s.port)
	return m.syncLocked()
}

// RemoveClient drops every subscription of a departed client.
func (m *Manager) RemoveClient(c Client) {
	m.mu.Lock()
	defer m.mu.Unlock()
	removed := 0
	for _, s := range m.subs {
		if s.client.ID() == c.ID() {
			m.removeLocked(s)
			removed++
		}
	}
	if removed > 0 {
		if err := m.syncLocked(); err != nil {
			m.log.Error("remove redirect rules of departed client", "client", c.Name(), "err", err)
		}
	}
}

// SubscriptionCount is the number of live subscriptions.
func (m *Manager) SubscriptionCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.subs)
}

func (m *Manager) removeLocked(s *subscription) {
	s.removed.Store(true)
	delete(m.subs, s.id)
	m.byPort[s.port] = slices.DeleteFunc(m.byPort[s.port], func(x *subscription) bool { return x == s })
	if len(m.byPort[s.port]) == 0 {
		delete(m.byPort, s.port)
	}
}

// syncLocked makes the redirect rules match the subscribed ports.
func (m *Manager) syncLocked() error {
	if m.table == nil || m.closed {
		return nil
	}
	rules := make([]redirect.Rule, 0, len(m.byPort))
	for port := range m.byPort {
		rules = append(rules, redirect.Rule{Port: port, ToPort: m.lisPort})
		m.redirected[port] = true
	}
	slices.SortFunc(rules, func(a, b redirect.Rule) int { return int(a.Port) - int(b.Port) })
	if err := m.table.Sync(rules); err != nil {
		return wire.Errorf(wire.CodeInternal, "update redirect rules in the target's network namespace: %v", err)
	}
	return nil
}

func (m *Manager) ensureRedirectLocked(ctx context.Context) error {
	if m.table != nil {
		return nil
	}
	lis, err := m.ns.Listen(ctx, "tcp", ":0")
	if err != nil {
		return wire.Errorf(wire.CodeUnavailable, "listen inside the target's network namespace: %v", err)
	}
	table, err := redirect.Open(ctx, m.ns, "remocal_"+randomHex(4))
	if err != nil {
		lis.Close()
		return wire.Errorf(wire.CodeUnavailable, "create redirect table in the target's network namespace (needs CAP_NET_ADMIN there, Linux 5.12+): %v", err)
	}
	lisPort := uint16(lis.Addr().(*net.TCPAddr).Port)
	if err := table.Guard(lisPort); err != nil {
		table.Close()
		lis.Close()
		return wire.Errorf(wire.CodeUnavailable, "protect the redirect listener in the target's network namespace: %v", err)
	}
	m.table, m.listener, m.lisPort = table, lis, lisPort
	m.wg.Go(func() { m.acceptLoop(lis, table) })
	return nil
}

// Accept errors that say the process or the system is short of something
// for a moment are retried after a pause that doubles from acceptRetryMin
// up to acceptRetryMax, as net/http's Server does: giving up on them would
// end the accept loop while the redirect rules still send the application's
// traffic to the listener.
const (
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
)

// temporaryAcceptError reports whether accept may succeed if tried again.
func temporaryAcceptError(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

func (m *Manager) acceptLoop(lis net.Listener, table *redirect.Table) {
	var pause time.Duration
	for {
		conn, err := lis.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) && m.ctx.Err() != nil {
				return
			}
			if temporaryAcceptError(err) {
				pause = min(max(2*pause, acceptRetryMin), acceptRetryMax)
				m.log.Warn("accept redirected connection; retrying", "err", err, "in", pause)
				select {
				case <-time.After(pause):
					continue
				case <-m.ctx.Done():
					return
				}
			}
			m.listenerFailed(lis, table, err)
			return
		}
		pause = 0
		if !m.track(conn) {
			conn.Close()
			return
		}
		m.wg.Go(func() {
			defer m.untrack(conn)
			m.serveConn(conn.(*net.TCPConn))
		})
	}
}

// listenerFailed handles the end of the accept loop other than by Close:
// the redirect table goes with the listener, so the application gets its
// ports back instead of their connections piling up unaccepted. The
// subscriptions stay; the next Subscribe opens a new listener and table and
// redirects every subscribed port again.
func (m *Manager) listenerFailed(lis net.Listener, table *redirect.Table, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.table != table {
		return
	}
	m.log.Error("the redirect listener failed; removing the redirect so the application gets its traffic back (subscribe again to restore it)",
		"err", err, "table", table.Name(), "subscriptions", len(m.subs))
	if cerr := table.Close(); cerr != nil {
		m.log.Error("remove redirect table", "err", cerr)
	}
	lis.Close()
	m.table, m.listener, m.lisPort = nil, nil, 0
}

func (m *Manager) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *Manager) untrack(c net.Conn) {
	c.Close()
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
}

// route is what the subscriptions say about a connection or a request.
type route struct {
	steal   *subscription   // who takes it; nil: the application
	mirrors []*subscription // who gets a copy
}

// connRoute decides for a new connection: unfiltered subscriptions act on the
// whole connection; filtered ones need the HTTP layer.
func (m *Manager) connRoute(port uint16) (r route, needHTTP bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.byPort[port] {
		switch {
		case s.filter != nil:
			needHTTP = true
		case s.mode == wire.ModeSteal:
			r.steal = s
		default:
			r.mirrors = append(r.mirrors, s)
		}
	}
	if r.steal != nil {
		needHTTP = false
	}
	return r, needHTTP
}

// requestRoute decides for one HTTP request among the filtered
// subscriptions: header filters first, then the rest, each in subscription
// order.
func (m *Manager) requestRoute(port uint16, req *http.Request) route {
	m.mu.Lock()
	defer m.mu.Unlock()
	var r route
	var pathOnly *subscription
	for _, s := range m.byPort[port] {
		if s.filter == nil || !s.filter.Match(req.Method, req.URL.Path, req.Header) {
			continue
		}
		switch {
		case s.mode == wire.ModeMirror:
			r.mirrors = append(r.mirrors, s)
		case s.hasHeaders() && r.steal == nil:
			r.steal = s
		case !s.hasHeaders() && pathOnly == nil:
			pathOnly = s
		}
	}
	if r.steal == nil {
		r.steal = pathOnly
	}
	return r
}

// Close removes the redirect, ends every relayed connection and waits for
// the manager's goroutines.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.cancel()
	var err error
	if m.table != nil {
		err = m.table.Close()
		m.listener.Close()
	}
	for c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
