package agentclient

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/remocal/remocal/internal/http1"
	"github.com/remocal/remocal/internal/relay"
	"github.com/remocal/remocal/protocol/wire"
)

// Forwarder is the standard Handler: it delivers incoming traffic to a
// local server as if that server were the target application. Stolen
// traffic is answered by the local server; mirrored traffic reaches it too,
// but its answers are dropped, since the target already answered.
type Forwarder struct {
	addr   string
	dialer net.Dialer

	origin OriginFunc // see WithOrigin

	mu     sync.Mutex
	idle   map[string][]*http1.Conn // keep-alive connections to the local server, by poolKey
	closed bool
}

// maxIdle bounds the pooled keep-alive connections to the local server.
const maxIdle = 16

// ForwardTo returns a Forwarder to a local TCP address such as
// "127.0.0.1:8080".
func ForwardTo(addr string) *Forwarder {
	return &Forwarder{addr: addr}
}

// Close releases idle connections to the local server.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	idle := f.idle
	f.idle, f.closed = nil, true
	f.mu.Unlock()
	for _, conns := range idle {
		for _, c := range conns {
			c.Close()
		}
	}
	return nil
}

// ServeIncoming implements Handler.
func (f *Forwarder) ServeIncoming(ctx context.Context, in *Incoming) {
	defer in.Stream.Close()
	switch {
	case in.Connection != nil && in.Connection.HTTP1Requests():
		f.serveRequests(ctx, in)
	case in.Connection != nil && in.Connection.Raw():
		// A stolen connection, or HTTP/2 streams the agent routed (h2c,
		// either mode: for a mirror the agent discards the answers).
		f.stealConnection(ctx, in)
	case in.Connection != nil:
		f.mirrorConnection(ctx, in)
	default:
		f.forwardRequest(ctx, in, in.Request.Mode == wire.ModeSteal)
	}
}

func (f *Forwarder) stealConnection(ctx context.Context, in *Incoming) {
	stream := in.Stream
	local, err := f.dialLocal(ctx, in)
	if err != nil {
		// Closing the stream without a byte makes the agent close the
		// peer's connection, which is what a refused connect looks like
		// from the peer's side once it was already accepted.
		relay.Abort(stream)
		return
	}
	defer local.Close()
	relay.Conns(stream, local)
}

// mirrorConnection replays the peer's bytes to the local server and drains
// whatever it answers.
func (f *Forwarder) mirrorConnection(ctx context.Context, inc *Incoming) {
	stream := inc.Stream
	local, err := f.dialLocal(ctx, inc)
	if err != nil {
		io.Copy(io.Discard, stream) // keep the agent's queue moving
		return
	}
	defer local.Close()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		io.Copy(io.Discard, local)
	}()
	for {
		chunk, err := wire.ReadChunk(stream)
		if err != nil {
			break
		}
		if chunk.Dir != wire.FromPeer {
			continue
		}
		if _, err := local.Write(chunk.Data); err != nil {
			io.Copy(io.Discard, stream)
			break
		}
	}
	relay.CloseWrite(local)
	select {
	case <-drained:
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		// The local server kept the connection open after the peer was
		// done; the target's own connection is long closed.
	}
	local.Close()
	<-drained
}

// forwardRequest sends one HTTP request from the stream to the local server
// and, for steals, relays the response back.
func (f *Forwarder) forwardRequest(ctx context.Context, inc *Incoming, steal bool) {
	stream := inc.Stream
	in := http1.NewConn(stream)
	req, err := in.ReadRequest() // bounded, though the agent bounded it already
	if err != nil {
		return
	}
	back := in
	if !steal {
		back = http1.NewConn(nil)
	}
	local, reused, err := f.get(ctx, inc)
	if err != nil {
		if steal {
			http1.WriteError(in, http.StatusBadGateway, fmt.Sprintf("remocal: the local process is not answering on %s: %v", f.addr, err))
		}
		return
	}
	res, err := http1.Exchange(back, local, req)
	if reused && http1.IsNoResponse(err) && http1.Replayable(req) {
		local.Close()
		if local, err = f.dial(ctx, inc); err == nil {
			res, err = http1.Exchange(back, local, req)
		}
	}
	if err != nil && local == nil {
		err = &http1.NoResponseError{Err: err}
	}
	if http1.IsNoResponse(err) && steal {
		http1.WriteError(in, http.StatusBadGateway, fmt.Sprintf("remocal: the local process on %s gave no response: %v", f.addr, err))
	}
	switch {
	case local == nil:
	case res.UpReusable:
		f.put(f.poolKey(inc), local)
	default:
		local.Close()
	}
}

// serveRequests answers the stolen requests of one peer connection that
// the stream carries in turn (wire.ProtocolHTTP1): each goes to the local
// server over one keep-alive connection, taken from the pool with the
// first request and given back when the stream ends.
func (f *Forwarder) serveRequests(ctx context.Context, inc *Incoming) {
	in := http1.NewConn(inc.Stream)
	var local *http1.Conn
	reused := false
	defer func() {
		if local != nil {
			f.put(f.poolKey(inc), local)
		}
	}()
	for {
		req, err := in.ReadRequest() // bounded, though the agent bounded it already
		if err != nil {
			return
		}
		if local == nil {
			if local, reused, err = f.get(ctx, inc); err != nil {
				http1.WriteError(in, http.StatusBadGateway, fmt.Sprintf("remocal: the local process is not answering on %s: %v", f.addr, err))
				return
			}
		}
		res, err := http1.Exchange(in, local, req)
		if reused && http1.IsNoResponse(err) && http1.Replayable(req) {
			// The local server closed the idle connection as the request
			// went out: a fresh one gets it through.
			local.Close()
			if local, err = f.dial(ctx, inc); err == nil {
				res, err = http1.Exchange(in, local, req)
			} else {
				err = &http1.NoResponseError{Err: err}
			}
		}
		reused = true
		if http1.IsNoResponse(err) {
			// Connection: close, so the agent ends the stream and the
			// peer's connection with this answer.
			http1.WriteError(in, http.StatusBadGateway, fmt.Sprintf("remocal: the local process on %s gave no response: %v", f.addr, err))
			if local != nil {
				local.Close()
				local = nil
			}
			return
		}
		if !res.UpReusable {
			local.Close()
			local = nil
		}
		if err != nil || !res.DownKeepAlive {
			return
		}
	}
}

// get returns a pooled connection to the local server, or a new one.
func (f *Forwarder) get(ctx context.Context, in *Incoming) (c *http1.Conn, reused bool, err error) {
	key := f.poolKey(in)
	f.mu.Lock()
	if n := len(f.idle[key]); n > 0 {
		c := f.idle[key][n-1]
		f.idle[key] = f.idle[key][:n-1]
		if n == 1 {
			delete(f.idle, key)
		}
		f.mu.Unlock()
		return c, true, nil
	}
	f.mu.Unlock()
	c, err = f.dial(ctx, in)
	return c, false, err
}

func (f *Forwarder) dial(ctx context.Context, in *Incoming) (*http1.Conn, error) {
	c, err := f.dialLocal(ctx, in)
	if err != nil {
		return nil, err
	}
	return http1.NewConn(c), nil
}

// put keeps c for the next request of the same pool. maxIdle bounds them
// all together; when full, a connection of some other pool makes room:
// pools of peer connections that ended are never asked for again.
func (f *Forwarder) put(key string, c *http1.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return
	}
	total := 0
	for _, conns := range f.idle {
		total += len(conns)
	}
	if total >= maxIdle {
		for k, conns := range f.idle {
			conns[0].Close()
			if f.idle[k] = conns[1:]; len(f.idle[k]) == 0 {
				delete(f.idle, k)
			}
			break
		}
	}
	if f.idle == nil {
		f.idle = map[string][]*http1.Conn{}
	}
	f.idle[key] = append(f.idle[key], c)
}
