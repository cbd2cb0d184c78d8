package incoming

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/remocal/remocal/internal/http1"
	"github.com/remocal/remocal/protocol/wire"
)

// upstream is an HTTP/2 client connection the agent opened: to the
// application, or over a stream to a client.
type upstream struct {
	cc *http.ClientConn
}

// h2Transport makes every upstream client connection. Its dial returns the
// connection the caller already has (givenConn), so the Transport adds
// HTTP/2's framing and nothing else: no proxy, no compression, no pool.
var h2Transport = func() *http.Transport {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	return &http.Transport{
		Protocols: &protocols,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			if c, ok := ctx.Value(givenConn{}).(net.Conn); ok {
				return c, nil
			}
			return nil, errors.New("incoming: no connection given for the HTTP/2 upstream")
		},
		DisableCompression:     true,
		MaxResponseHeaderBytes: http1.MaxHeadBytes,
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerStream:     h2StreamBuffer,
			MaxReceiveBufferPerConnection: h2ConnBuffer,
		},
	}
}()

type givenConn struct{}

// errConnOver: the peer's connection ended while one of its streams
// needed an upstream.
var errConnOver = errors.New("the peer's HTTP/2 connection is over")

// newUpstream speaks HTTP/2 as a client on c (prior knowledge).
func newUpstream(ctx context.Context, c net.Conn, addr string) (*upstream, error) {
	cc, err := h2Transport.NewClientConn(context.WithValue(ctx, givenConn{}, c), "http", addr)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("start HTTP/2 on the upstream connection: %w", err)
	}
	return &upstream{cc: cc}, nil
}

// take reserves a stream on u: false if u is gone, went away (GOAWAY) or
// is at its stream limit, and a new connection is needed.
func (u *upstream) take() bool {
	return u != nil && u.cc.Err() == nil && u.cc.Reserve() == nil
}

// appUpstream returns a connection to the application with a stream
// reserved, dialling a new one when there is none that can take it.
func (h *h2Conn) appUpstream() (*upstream, error) {
	h.upMu.Lock()
	defer h.upMu.Unlock()
	if h.upClosed {
		return nil, errConnOver
	}
	if h.app.take() {
		return h.app, nil
	}
	h.retireLocked(h.app)
	c, err := h.m.dialApp(h.info)
	if err != nil {
		return nil, err
	}
	up, err := newUpstream(h.ctx, c, h.info.dest.String())
	if err != nil {
		return nil, err
	}
	h.app = up
	if !up.take() {
		return nil, errors.New("the application's new HTTP/2 connection refused its first stream")
	}
	return up, nil
}

// peer returns the connection to a client's subscription for one mode,
// with a stream reserved, opening an incoming.connection stream with
// protocol h2c when there is none that can take it.
func (h *h2Conn) peer(s *subscription, mode wire.Mode) (*upstream, error) {
	h.upMu.Lock()
	defer h.upMu.Unlock()
	if h.upClosed {
		return nil, errConnOver
	}
	key := peerKey{s, mode}
	if up := h.peers[key]; up.take() {
		return up, nil
	}
	h.retireLocked(h.peers[key])
	stream, err := h.m.openStream(s, &wire.IncomingConnection{
		Subscription: s.id, Connection: h.info.id, Mode: mode, Port: h.info.port,
		Source: h.info.source.String(), Destination: h.info.dest.String(), Protocol: wire.ProtocolH2C,
	})
	if err != nil {
		return nil, err
	}
	s.connections.Add(1)
	up, err := newUpstream(h.ctx, stream, h.info.dest.String())
	if err != nil {
		return nil, err
	}
	h.peers[key] = up
	if !up.take() {
		return nil, errors.New("the client's new HTTP/2 connection refused its first stream")
	}
	return up, nil
}

// retireLocked keeps u (replaced) for its streams still running and closes
// the retired connections that have none left.
func (h *h2Conn) retireLocked(u *upstream) {
	if u != nil {
		h.old = append(h.old, u)
	}
	kept := h.old[:0]
	for _, o := range h.old {
		if o.cc.Err() != nil || o.cc.InFlight() == 0 {
			o.cc.Close()
			continue
		}
		kept = append(kept, o)
	}
	h.old = kept
}

// closeUpstreams ends every upstream connection, and any made later: the
// handlers still running when the peer's connection ended must not leave
// one open.
func (h *h2Conn) closeUpstreams() {
	h.upMu.Lock()
	defer h.upMu.Unlock()
	h.upClosed = true
	all := append(h.old, h.app)
	for _, up := range h.peers {
		all = append(all, up)
	}
	for _, up := range all {
		if up != nil {
			up.cc.Close()
		}
	}
	h.app, h.old, h.peers = nil, nil, map[peerKey]*upstream{}
}

// upstreamRequest is r as sent upstream with ctx and body: same method,
// path, authority, headers and (as they come) trailers.
func upstreamRequest(ctx context.Context, r *http.Request, body io.ReadCloser) *http.Request {
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.URL.Scheme = "http"
	out.URL.Host = r.Host
	out.Body = body
	// The Transport would add its own User-Agent to a request without one.
	http1.KeepDefaultUserAgent(out)
	return out
}

// forward sends r on up (a stream is reserved there) and relays the
// response to w as it comes: headers at once, each piece of body flushed
// (gRPC streams messages), trailers at the end. A response that breaks off
// resets the downstream stream instead of ending it cleanly, so a cut
// response is never mistaken for a complete one.
func (h *h2Conn) forward(w http.ResponseWriter, r *http.Request, up *upstream, who string) {
	res, err := up.cc.RoundTrip(upstreamRequest(r.Context(), r, r.Body))
	if err != nil {
		if r.Context().Err() != nil {
			return // the peer gave up on the stream
		}
		h.log.Debug("HTTP/2 stream got no response", "to", who, "path", r.URL.Path, "err", err)
		writeGatewayError(w, r, fmt.Sprintf("remocal: %s gave no response: %v", who, err))
		return
	}
	defer res.Body.Close()
	hdr := w.Header()
	for k, v := range res.Header {
		hdr[k] = v
	}
	// Trailers are announced as they arrive (http.TrailerPrefix), which
	// covers gRPC's undeclared ones; a declared list would be a promise.
	delete(hdr, "Trailer")
	w.WriteHeader(res.StatusCode)
	rc := http.NewResponseController(w)
	rc.Flush()
	if err := relayBody(rc, w, res.Body); err != nil {
		if errors.Is(err, errUpstreamBody) && r.Context().Err() == nil {
			h.log.Debug("HTTP/2 response broke off; resetting the stream", "from", who, "path", r.URL.Path, "err", err)
			panic(http.ErrAbortHandler)
		}
		return
	}
	for k, v := range res.Trailer {
		hdr[http.TrailerPrefix+k] = v
	}
}

var errUpstreamBody = errors.New("reading the upstream response")

// relayBufs are relayBody's buffers: a gRPC call is a stream, so a fresh
// 32 KiB buffer per call was most of what a routed call allocated.
var relayBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// relayBody copies body to w, flushing after every read.
func relayBody(rc *http.ResponseController, w io.Writer, body io.Reader) error {
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := rc.Flush(); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", errUpstreamBody, err)
		}
	}
}
