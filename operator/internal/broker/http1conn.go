package broker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/http1"
	"github.com/remocal/remocal/internal/relay"
	"github.com/remocal/remocal/protocol/wire"
)

// An agent sends the stolen HTTP/1 requests of one peer connection on one
// stream (wire.ProtocolHTTP1) to the operator, which lists
// wire.CapHTTP1Conn as its clients do. The operator takes the requests off
// that stream one by one, so that it counts each, and hands them to the
// client: on one stream of the same kind to a client that lists the
// capability, on a stream each (incoming.request) to an older one, as an
// agent would have.

// deliverRequests relays the requests of in (wire.ProtocolHTTP1) to cc
// until the agent ends the stream or an exchange leaves it unusable.
func (s *session) deliverRequests(ctx context.Context, sb *sub, cc *clientConn, in *agentclient.Incoming) {
	c := in.Connection
	var n atomic.Uint64
	agent := http1.NewConn(counting(counting(in.Stream, &s.counters.bytesIn), &n))
	mode := &s.b.traffic[modeSteal]
	defer func() { mode.bytes.Add(n.Load()) }()
	oneStream := wire.HasCapability(cc.caps, wire.CapHTTP1Conn)
	var kept *http1.Conn // the client's stream, when oneStream
	defer func() {
		if kept != nil {
			kept.Close()
		}
	}()
	for seq := uint64(1); ; seq++ {
		req, err := agent.ReadRequest()
		if err != nil {
			return
		}
		client := kept
		if client == nil {
			var hdr wire.Message = &wire.IncomingRequest{
				Subscription: sb.id, Connection: c.Connection, Request: seq, Mode: wire.ModeSteal, Port: c.Port,
				Source: c.Source, Destination: c.Destination,
			}
			if oneStream {
				h := *c
				h.Subscription = sb.id
				hdr = &h
			}
			if client, err = s.openClientStream(ctx, cc, hdr, &n); err != nil {
				// Connection: close, so the agent passes it on and ends the
				// peer's connection.
				http1.WriteError(agent, http.StatusBadGateway, fmt.Sprintf("remocal: the operator could not reach the stealing client: %v", err))
				return
			}
		}
		kept = nil
		s.counters.inReqs.Add(1)
		mode.requests.Add(1)
		res, err := http1.Exchange(agent, client, req)
		if http1.IsNoResponse(err) {
			client.Close()
			http1.WriteError(agent, http.StatusBadGateway, "remocal: the stealing client gave no response: "+err.Error())
			return
		}
		if oneStream && err == nil && res.UpReusable {
			kept = client
		} else {
			client.Close()
		}
		if err != nil || !res.DownKeepAlive {
			return
		}
	}
}

// openClientStream opens a stream to the client with hdr buffered, to go
// out with the request.
func (s *session) openClientStream(ctx context.Context, cc *clientConn, hdr wire.Message, n *atomic.Uint64) (*http1.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	st, err := cc.openStream(ctx)
	cancel()
	if err != nil {
		return nil, err
	}
	var conn net.Conn = counting(counting(st, &s.counters.bytesOut), n)
	bw := bufio.NewWriterSize(conn, 16<<10)
	if err := wire.WriteMessage(bw, 0, hdr); err != nil {
		relay.Abort(st)
		return nil, err
	}
	return &http1.Conn{Conn: conn, R: bufio.NewReader(conn), W: bw}, nil
}
