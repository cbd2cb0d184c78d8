package client

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/remocal/remocal/agent/relay"
	"github.com/remocal/remocal/protocol/wire"
)

// Forwarder is the standard Handler: it delivers incoming traffic to a
// local server as if that server were the target application. Stolen
// traffic is answered by the local server; mirrored traffic reaches it too,
// but its answers are dropped, since the target already answered.
type Forwarder struct {
	addr      string
	dialer    net.Dialer
	transport *http.Transport
	closeOnce sync.Once
}

// ForwardTo returns a Forwarder to a local TCP address such as
// "127.0.0.1:8080".
func ForwardTo(addr string) *Forwarder {
	f := &Forwarder{addr: addr}
	f.transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return f.dialer.DialContext(ctx, "tcp", f.addr)
		},
		DisableCompression:  true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	return f
}

// Close releases idle connections to the local server.
func (f *Forwarder) Close() error {
	f.closeOnce.Do(f.transport.CloseIdleConnections)
	return nil
}

// ServeIncoming implements Handler.
func (f *Forwarder) ServeIncoming(ctx context.Context, in *Incoming) {
	defer in.Stream.Close()
	switch {
	case in.Connection != nil && in.Connection.Mode == wire.ModeSteal:
		f.stealConnection(ctx, in.Stream)
	case in.Connection != nil:
		f.mirrorConnection(ctx, in.Stream)
	default:
		f.forwardRequest(ctx, in.Stream, in.Request.Mode == wire.ModeSteal)
	}
}

func (f *Forwarder) stealConnection(ctx context.Context, stream net.Conn) {
	local, err := f.dialer.DialContext(ctx, "tcp", f.addr)
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
func (f *Forwarder) mirrorConnection(ctx context.Context, stream net.Conn) {
	local, err := f.dialer.DialContext(ctx, "tcp", f.addr)
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
// and, for steals, writes the response back.
func (f *Forwarder) forwardRequest(ctx context.Context, stream net.Conn, steal bool) {
	br := bufio.NewReader(stream)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	// A server-side request becomes a client request to the local server.
	req.RequestURI = ""
	req.URL.Scheme = "http"
	req.URL.Host = f.addr
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""} // do not add Go's default
	}
	req = req.WithContext(ctx)
	resp, err := f.transport.RoundTrip(req)
	if err != nil {
		if steal {
			msg := fmt.Sprintf("remocal: the local process is not answering on %s: %v", f.addr, err)
			fmt.Fprintf(stream, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n", len(msg)+1, msg)
		}
		return
	}
	defer resp.Body.Close()
	if !steal {
		io.Copy(io.Discard, resp.Body)
		return
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		f.relayUpgrade(stream, br, resp)
		return
	}
	resp.Write(stream)
}

// relayUpgrade writes a 101 response and then relays the upgraded
// connection's bytes.
func (f *Forwarder) relayUpgrade(stream net.Conn, br *bufio.Reader, resp *http.Response) {
	upgraded, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		return
	}
	body := resp.Body
	resp.Body = nil
	if err := resp.Write(stream); err != nil {
		body.Close()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(upgraded, br)
		upgraded.Close()
	}()
	io.Copy(stream, upgraded)
	relay.CloseWrite(stream)
	<-done
}
