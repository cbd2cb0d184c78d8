package incoming

// HTTP/2 (h2c with prior knowledge, or upgraded from HTTP/1.1) on a port
// with HTTP filters is routed stream by stream: each stream (a gRPC call is
// one) goes to the stealing client whose filter it matches, or else to the
// application, and filtered mirrors get a copy of it.
//
// Why the agent terminates HTTP/2 with net/http's own HTTP/2 server and
// client (Go 1.26: http.Server and Transport with Protocols set to
// unencrypted HTTP/2, Transport.NewClientConn) instead of relaying frames
// with an http2.Framer and hpack: a downstream connection's streams end up
// on several upstream connections (the application's and one per client),
// each with its own flow-control windows, settings, HPACK tables and stream
// IDs. A frame relay would have to rewrite stream IDs, re-encode every
// header block for its new table, and keep per-stream and per-connection
// windows on both sides consistent — a second HTTP/2 implementation.
// Terminating on both sides gets all of that (and GOAWAY, RST_STREAM,
// trailers, header-size and stream-count limits) from the implementation
// every Go gRPC and HTTP server already runs, at the cost of re-framing.
// golang.org/x/net/http2's Server and Transport are the same code, but
// deprecated in favour of net/http's since Go 1.24; only its Framer is used
// here, for the h2c upgrade (h2upgrade.go).
//
// A stolen or mirrored stream reaches its client on an incoming.connection
// stream with protocol h2c: the agent is an HTTP/2 client on it, one such
// connection per downstream connection and subscription, carrying every
// stream of that connection that matched. The client relays it raw to the
// developer's port, where the local program sees an ordinary h2c
// connection (agentclient.Forwarder).

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/remocal/remocal/internal/http1"
	"github.com/remocal/remocal/protocol/wire"
)

const (
	// h2MaxStreams bounds the concurrent streams of one downstream
	// connection (SETTINGS_MAX_CONCURRENT_STREAMS); net/http's default is
	// 250 and gRPC servers allow about as many.
	h2MaxStreams = 256
	// h2StreamBuffer and h2ConnBuffer bound what a peer may send ahead of
	// the agent relaying it (the flow-control windows the agent grants):
	// net/http's defaults, also gRPC's usual ceiling.
	h2StreamBuffer = 1 << 20
	h2ConnBuffer   = 4 << 20
	// grpcHealthCheck is the gRPC health service's method; kubelet gRPC
	// probes call it.
	grpcHealthCheck = "/grpc.health.v1.Health/Check"
)

// h2Conn routes the streams of one downstream HTTP/2 connection.
type h2Conn struct {
	m    *Manager
	info connInfo
	// whole is an unfiltered steal of the port: every stream goes to it
	// but kubelet probes (only node connections under such a steal are
	// served stream by stream).
	whole    *subscription
	fromNode bool
	ctx      context.Context // ends with the downstream connection
	log      *slog.Logger

	mu      sync.Mutex
	closing bool
	running sync.WaitGroup // handlers and mirror deliveries

	// upMu guards the upstream connections; held while one is made, so
	// that streams arriving meanwhile share it instead of making more.
	upMu     sync.Mutex
	upClosed bool // the connection is over: make no more
	app      *upstream
	peers    map[peerKey]*upstream
	old      []*upstream // replaced after a GOAWAY or at their stream limit

	streams atomic.Uint64
	// copies bounds the mirror copies in flight: they may outlive their
	// streams, so the stream limit alone does not bound them.
	copies chan struct{}
}

type peerKey struct {
	s    *subscription
	mode wire.Mode
}

// serveH2 serves down, whose first bytes are the HTTP/2 client preface,
// until the peer or the manager ends it.
func (m *Manager) serveH2(down net.Conn, info connInfo, whole *subscription) {
	ctx, cancel := context.WithCancel(m.ctx)
	h := &h2Conn{
		m: m, info: info, whole: whole, fromNode: m.fromNode(info.source.Addr()), ctx: ctx,
		log: m.log.With("connection", info.id), peers: map[peerKey]*upstream{},
		copies: make(chan struct{}, h2MaxStreams),
	}
	l := newOneConnListener(down)
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:   h,
		Protocols: &protocols,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          h2MaxStreams,
			MaxReceiveBufferPerStream:     h2StreamBuffer,
			MaxReceiveBufferPerConnection: h2ConnBuffer,
		},
		MaxHeaderBytes: http1.MaxHeadBytes,
		BaseContext:    func(net.Listener) context.Context { return ctx },
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				l.Close()
			}
		},
		ErrorLog: slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
	h.log.Debug("routing HTTP/2 streams", "source", info.source, "port", info.port)
	srv.Serve(l)
	cancel()
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()
	// Handlers end with their streams (the server cancels them with the
	// connection); mirror copies may run on for mirrorWriteDeadline, on
	// upstream connections that must stay open until they are done.
	h.running.Wait()
	h.closeUpstreams()
}

// begin registers a handler or delivery with the connection; false once it
// is closing (the WaitGroup must not grow while serveH2 waits on it).
func (h *h2Conn) begin() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.running.Add(1)
	return true
}

// ServeHTTP routes one stream.
func (h *h2Conn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.begin() {
		panic(http.ErrAbortHandler)
	}
	defer h.running.Done()
	seq := h.streams.Add(1)
	rt := h.route(r)
	if len(rt.mirrors) > 0 {
		h.mirrorStream(r, rt.mirrors, seq)
	}
	if rt.steal != nil {
		up, err := h.peer(rt.steal, wire.ModeSteal)
		if err == nil {
			rt.steal.requests.Add(1)
			h.forward(w, r, up, "the stealing client ("+rt.steal.client.Name()+")")
			return
		}
		h.log.Warn("stealing client unreachable; passing the stream to the application", "subscription", rt.steal.id, "client", rt.steal.client.Name(), "err", err)
	}
	up, err := h.appUpstream()
	if err != nil {
		writeGatewayError(w, r, "remocal: the application is unreachable: "+err.Error())
		return
	}
	h.forward(w, r, up, "the application")
}

// route decides for one stream: as requestRoute does for an HTTP/1
// request, and kubelet probes from the node stay with the application.
func (h *h2Conn) route(r *http.Request) route {
	var rt route
	if h.whole != nil {
		rt.steal = h.whole
	} else {
		rt = h.m.requestRoute(h.info.port, r)
	}
	if rt.steal != nil && h.fromNode && isProbeStream(r) {
		h.log.Debug("kubelet probe on a stolen port: passing it to the application", "path", r.URL.Path)
		rt.steal = nil
	}
	return rt
}

// isProbeStream reports whether an HTTP/2 request from the node is a
// kubelet probe: an HTTP probe by its User-Agent (kubelet gRPC probes carry
// it too, before grpc-go's own), or a call of the gRPC health service,
// which is what gRPC probes and their exec-based predecessors ask.
func isProbeStream(r *http.Request) bool {
	return isProbeRequest(r) || r.URL.Path == grpcHealthCheck
}

// isGRPC reports whether r is a gRPC call (application/grpc,
// application/grpc+proto, ...).
func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+") || strings.HasPrefix(ct, "application/grpc;")
}

// writeGatewayError answers a stream that reached nobody: a gRPC call gets
// status UNAVAILABLE (14) with the message, so its client sees why; other
// requests get 502.
func writeGatewayError(w http.ResponseWriter, r *http.Request, msg string) {
	if isGRPC(r) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "14")
		w.Header().Set("Grpc-Message", grpcPercentEncode(msg))
		w.WriteHeader(http.StatusOK)
		return
	}
	http.Error(w, msg, http.StatusBadGateway)
}

// grpcPercentEncode encodes a grpc-message value as the gRPC spec asks:
// printable ASCII but '%' as is, every other byte as %XX.
func grpcPercentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x20 && c <= 0x7e && c != '%' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// oneConnListener hands one connection to an http.Server, then blocks
// until closed (when that connection is over).
type oneConnListener struct {
	conn   chan net.Conn
	closed chan struct{}
	once   sync.Once
	addr   net.Addr
}

func newOneConnListener(c net.Conn) *oneConnListener {
	l := &oneConnListener{conn: make(chan net.Conn, 1), closed: make(chan struct{}), addr: c.LocalAddr()}
	l.conn <- c
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conn:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.addr }
