package broker

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/http1"
	"github.com/remocal/remocal/internal/relay"
	"github.com/remocal/remocal/protocol/wire"
)

// An agent sends the stolen HTTP/1 requests of one peer connection on one
// stream (wire.ProtocolHTTP1) to the operator, which lists
// wire.CapHTTP1Conn as its clients do. A client without it (an older
// remocal) reads only a stream per request, so for it the operator takes
// the requests off the agent's stream one by one and hands each to the
// client on a stream of its own, as an agent would have.

// deliverRequests relays the requests of in (wire.ProtocolHTTP1) to cc, a
// client without wire.CapHTTP1Conn, a stream each, until the agent ends
// the stream or an exchange leaves it unusable.
func (s *session) deliverRequests(ctx context.Context, sb *sub, cc *clientConn, in *agentclient.Incoming) {
	c := in.Connection
	var n atomic.Uint64
	agent := http1.NewConn(counting(counting(in.Stream, &s.counters.bytesIn), &n))
	mode := &s.b.traffic[modeSteal]
	defer func() { mode.bytes.Add(n.Load()) }()
	for seq := uint64(1); ; seq++ {
		req, err := agent.ReadRequest()
		if err != nil {
			return
		}
		openCtx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		st, err := cc.openStream(openCtx)
		cancel()
		if err != nil {
			// Connection: close, so the agent passes it on and ends the
			// peer's connection.
			http1.WriteError(agent, http.StatusBadGateway, fmt.Sprintf("remocal: the operator could not reach the stealing client: %v", err))
			return
		}
		client := counting(counting(st, &s.counters.bytesOut), &n)
		bw := bufio.NewWriterSize(client, 16<<10)
		hdr := &wire.IncomingRequest{
			Subscription: sb.id, Connection: c.Connection, Request: seq, Mode: wire.ModeSteal, Port: c.Port,
			Source: c.Source, Destination: c.Destination,
		}
		if err := wire.WriteMessage(bw, 0, hdr); err != nil {
			relay.Abort(st)
			return
		}
		s.counters.inReqs.Add(1)
		mode.requests.Add(1)
		res, err := http1.Exchange(agent, &http1.Conn{Conn: client, R: bufio.NewReader(client), W: bw}, req)
		st.Close()
		if http1.IsNoResponse(err) {
			http1.WriteError(agent, http.StatusBadGateway, "remocal: the stealing client gave no response: "+err.Error())
			return
		}
		if err != nil || !res.DownKeepAlive {
			return
		}
	}
}
