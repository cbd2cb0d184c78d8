package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"go.lsp.dev/jsonrpc2"
	"go.lsp.dev/protocol"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/internal/framing"
)

// client is one connected JSON-RPC peer: an IDE window, a forwarder, a
// script.
type client struct {
	s       *Server
	conn    jsonrpc2.Conn
	replies *replyWatch
	log     *slog.Logger
	id      uint64

	mu               sync.Mutex
	initialized      bool // initialize answered
	shutdown         bool // shutdown received: only exit is accepted
	name             string
	workDoneProgress bool
	folders          []string

	// inflight cancels calls by id for $/cancelRequest. (jsonrpc2's
	// CancelHandler derives contexts from the pooled request context, whose
	// recycling races with the context package's watcher goroutine; contexts
	// here derive from the connection's lifetime context instead.)
	inflightMu sync.Mutex
	inflight   map[jsonrpc2.ID]context.CancelFunc
	// cancelledEarly holds ids whose $/cancelRequest overtook the request
	// itself (Preempt runs on the read loop, requests wait in a queue).
	cancelledEarly map[jsonrpc2.ID]bool

	// outbox serialises notifications to this client on one goroutine, so
	// a slow client delays only itself.
	outbox chan outgoing
	done   chan struct{}
	closed sync.Once
}

type outgoing struct {
	method string
	params any
}

// outboxSize bounds notifications queued for a slow client; past it the
// client is disconnected rather than letting memory grow.
const outboxSize = 1024

var nextClientID atomic.Uint64

// ServeConn serves one client until it disconnects, sends exit, or the
// daemon stops.
func (s *Server) ServeConn(rwc io.ReadWriteCloser) {
	c := &client{s: s, id: nextClientID.Add(1), outbox: make(chan outgoing, outboxSize), done: make(chan struct{})}
	c.log = s.log.With("client", c.id)
	c.inflight = map[jsonrpc2.ID]context.CancelFunc{}
	c.cancelledEarly = map[jsonrpc2.ID]bool{}
	c.replies = newReplyWatch(framing.NewStream(rwc, s.opts.MaxMessage))
	c.conn = jsonrpc2.NewConn(c.replies, jsonrpc2.WithPreempter(c))
	if !s.addClient(c) {
		rwc.Close()
		return
	}
	defer s.removeClient(c)
	c.conn.Go(s.ctx, c.handle)
	sender := make(chan struct{})
	go func() {
		defer close(sender)
		c.sendLoop()
	}()
	select {
	case <-c.conn.Done():
	case <-c.done:
		c.conn.Close()
	}
	c.close()
	<-sender
	c.replies.flush()
	if err := c.conn.Err(); err != nil && !errors.Is(err, io.EOF) {
		c.log.Info("client connection ended", "err", err)
	}
}

func (s *Server) addClient(c *client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	s.clients[c] = struct{}{}
	s.touch()
	return true
}

func (s *Server) removeClient(c *client) {
	s.mu.Lock()
	delete(s.clients, c)
	s.mu.Unlock()
	s.configs.unwatchClient(c)
	s.touch()
}

func (c *client) close() {
	c.closed.Do(func() { close(c.done) })
}

// sendLoop writes queued notifications in order.
func (c *client) sendLoop() {
	for {
		select {
		case <-c.done:
			return
		case <-c.conn.Done():
			return
		case m := <-c.outbox:
			if err := c.conn.Notify(c.s.ctx, m.method, m.params); err != nil {
				c.log.Debug("notify", "method", m.method, "err", err)
			}
		}
	}
}

// notify queues a notification; a client whose queue is full is too slow
// to keep up with the daemon and is disconnected.
func (c *client) notify(method string, params any) {
	select {
	case c.outbox <- outgoing{method, params}:
	case <-c.done:
	default:
		c.log.Warn("client is not reading notifications; disconnecting it")
		c.close()
	}
}

// maxCancelledEarly bounds the ids remembered from cancels that arrived
// before their request.
const maxCancelledEarly = 64

// Preempt handles $/cancelRequest on the read loop, ahead of the request it
// cancels.
func (c *client) Preempt(ctx context.Context, req *jsonrpc2.Request) (any, error) {
	if req.Method() != "$/cancelRequest" {
		return nil, jsonrpc2.ErrNotHandled
	}
	var p struct {
		ID any `json:"id"`
	}
	if err := jsonrpc2.DefaultCodec.Unmarshal(req.Params(), &p); err == nil {
		var id jsonrpc2.ID
		switch v := p.ID.(type) {
		case float64:
			id = jsonrpc2.NewNumberID(int64(v))
		case string:
			id = jsonrpc2.NewStringID(v)
		}
		c.inflightMu.Lock()
		cancel := c.inflight[id]
		if cancel == nil && id != (jsonrpc2.ID{}) {
			if len(c.cancelledEarly) >= maxCancelledEarly {
				// A client cancelling ids it never sent must not grow
				// this without bound.
				clear(c.cancelledEarly)
			}
			c.cancelledEarly[id] = true
		}
		c.inflightMu.Unlock()
		if cancel != nil {
			cancel()
		}
	}
	return true, nil // handled; a notification gets no reply
}

// handle is the prologue every request goes through: lifecycle checks,
// panic containment, error translation. Notifications never return an error
// (that would end the connection); failures are logged.
func (c *client) handle(ctx context.Context, req *jsonrpc2.Request) (result any, err error) {
	method := req.Method()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("handler panicked", "method", method, "panic", r, "stack", string(debug.Stack()))
			result, err = nil, jsonrpc2.Errorf(jsonrpc2.InternalError, "internal error in %s: %v", method, r)
		}
		if !req.IsCall() {
			if err != nil {
				c.log.Warn("notification failed", "method", method, "err", err)
			}
			result, err = nil, nil
			return
		}
		err = wireError(err)
	}()
	switch method {
	case "initialize":
		return c.initialize(ctx, req.Params())
	case "initialized":
		return nil, nil
	case "shutdown":
		c.mu.Lock()
		c.shutdown = true
		c.mu.Unlock()
		return nil, nil
	case "exit":
		// exit ends this client's connection, never the shared daemon.
		c.close()
		return nil, nil
	}
	c.mu.Lock()
	initialized, shut := c.initialized, c.shutdown
	c.mu.Unlock()
	switch {
	case !initialized:
		return nil, daemon.Errorf(daemon.CodeNotInitialized, "send initialize before %s", method)
	case shut:
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidRequest, "%s after shutdown: only exit is accepted", method)
	}
	h, ok := methods[method]
	if !ok {
		if !req.IsCall() {
			return nil, nil // unknown notifications are ignored, as LSP asks
		}
		return nil, daemon.Errorf(daemon.CodeMethodNotFound, "unknown method %q; this daemon (remocal %s) knows %s", method, c.s.opts.Version, methodList())
	}
	callCtx, cancel := context.WithCancel(jsonrpc2.DetachContext(ctx))
	defer cancel()
	if req.IsCall() {
		// Registered before going async: once Async returns, later
		// requests run and a $/cancelRequest for this one may follow.
		id := req.ID()
		callCtx = context.WithValue(callCtx, requestIDKey{}, id)
		c.inflightMu.Lock()
		c.inflight[id] = cancel
		if c.cancelledEarly[id] {
			delete(c.cancelledEarly, id)
			cancel()
		}
		c.inflightMu.Unlock()
		defer func() {
			c.inflightMu.Lock()
			delete(c.inflight, id)
			c.inflightMu.Unlock()
		}()
	}
	if h.async {
		jsonrpc2.Async(ctx) // clones the request: its params stay valid while the handler runs
	}
	params := req.Params()
	return h.fn(callCtx, c, params)
}

// wireError turns handler errors into JSON-RPC errors with stable codes.
func wireError(err error) error {
	if err == nil {
		return nil
	}
	var de *daemon.Error
	if errors.As(err, &de) {
		return &jsonrpc2.Error{Code: jsonrpc2.Code(de.Code), Message: de.Message, Data: jsonrpc2.RawMessage(de.Data())}
	}
	var je *jsonrpc2.Error
	if errors.As(err, &je) {
		return je
	}
	if errors.Is(err, context.Canceled) {
		return jsonrpc2.NewError(jsonrpc2.Code(-32800), "request cancelled") // LSP RequestCancelled
	}
	return &jsonrpc2.Error{Code: daemon.CodeInternal, Message: err.Error(),
		Data: jsonrpc2.RawMessage((&daemon.Error{Code: daemon.CodeInternal}).Data())}
}

func (c *client) initialize(ctx context.Context, raw jsonrpc2.RawMessage) (any, error) {
	var p protocol.InitializeParams
	if err := jsonrpc2.DefaultCodec.Unmarshal(raw, &p); err != nil {
		return nil, daemon.Errorf(daemon.CodeInvalidParams, "initialize: %v", err)
	}
	c.mu.Lock()
	if c.initialized {
		c.mu.Unlock()
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidRequest, "initialize sent twice")
	}
	c.initialized = true
	c.name = p.ClientInfo.Name
	if v, ok := p.ClientInfo.Version.Get(); ok && v != "" {
		c.name += " " + v
	}
	if p.Capabilities.Window != nil && p.Capabilities.Window.WorkDoneProgress != nil {
		c.workDoneProgress = *p.Capabilities.Window.WorkDoneProgress
	}
	if folders, ok := p.WorkspaceFolders.Get(); ok {
		for _, f := range folders {
			if path, err := folderPath(string(f.URI)); err == nil {
				c.folders = append(c.folders, path)
			}
		}
	}
	folders := c.folders
	c.mu.Unlock()
	c.log = c.log.With("name", c.name)
	for _, f := range folders {
		c.s.configs.watch(c, f)
	}
	return protocol.InitializeResult{
		Capabilities: protocol.ServerCapabilities{Experimental: experimental},
		ServerInfo:   protocol.ServerInfo{Name: daemon.ServerName, Version: protocol.NewOptional(c.s.opts.Version)},
	}, nil
}

// experimental names the contract this daemon speaks, for clients to
// check before they rely on it.
var experimental = func() []byte {
	b, err := json.Marshal(daemon.InitializeExperimental{Remocal: daemon.ExperimentalRemocal{ProtocolVersion: daemon.ProtocolVersion}})
	if err != nil {
		panic(err)
	}
	return b
}()

// displayName is how the client appears as a session owner.
func (c *client) displayName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.name == "" {
		return fmt.Sprintf("client %d", c.id)
	}
	return c.name
}
