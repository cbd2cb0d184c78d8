package incoming

import (
	"bufio"
	"net/http"

	"github.com/remocal/remocal/internal/http1"
	"github.com/remocal/remocal/protocol/wire"
)

// A header-filtered steal used to cost a stream per request: its opening
// and closing frames, the client's accept, a goroutine and a header decode
// there, and fresh buffers on both sides, which made up most of what such a
// request added over the direct path (docs/performance.md). With a client
// that lists wire.CapHTTP1Conn the requests of one peer connection that a
// subscription steals share one stream (wire.ProtocolHTTP1), opened with
// the first of them and kept while the exchanges leave it reusable.

// stolenStreams are the streams of one peer connection, one per stealing
// subscription that took a request of it; usually zero or one.
type stolenStreams map[*subscription]*http1.Conn

// closeAll ends every kept stream (the peer connection is over).
func (ss stolenStreams) closeAll() {
	for s, c := range ss {
		c.Close()
		delete(ss, s)
	}
}

// dropRemoved closes the streams of subscriptions that ended: they get no
// more requests, and the client's side of the stream holds a goroutine and
// a connection to the local server.
func (ss stolenStreams) dropRemoved() {
	for s, c := range ss {
		if s.removed.Load() {
			c.Close()
			delete(ss, s)
		}
	}
}

// stealRequest hands req to s's client and relays the response to down.
// delivered is false when the client could not be reached and the request
// is still untouched: the caller passes it to the application.
func (m *Manager) stealRequest(down *http1.Conn, info connInfo, s *subscription, req *http.Request, seq uint64, kept stolenStreams) (res http1.Result, delivered bool, err error) {
	if !clientHas(s.client, wire.CapHTTP1Conn) {
		stream, ok := m.openRequestStream(s, info, seq)
		if !ok {
			return res, false, nil
		}
		res, err = http1.Exchange(down, stream, req)
		stream.Close()
		return res, true, err
	}
	stream, reused := kept[s], true
	if stream == nil {
		if stream, reused = m.openConnStream(s, info), false; stream == nil {
			return res, false, nil
		}
	}
	delete(kept, s)
	s.requests.Add(1)
	res, err = http1.Exchange(down, stream, req)
	if reused && http1.IsNoResponse(err) && http1.Replayable(req) {
		// The client ended the kept stream as the request went out (its
		// side is going away): a new stream, or the application, gets the
		// request through.
		stream.Close()
		if stream = m.openConnStream(s, info); stream == nil {
			return res, false, nil
		}
		res, err = http1.Exchange(down, stream, req)
	}
	if err != nil || !res.UpReusable {
		stream.Close()
		return res, true, err
	}
	kept[s] = stream
	return res, true, nil
}

// openConnStream opens the stream that carries the requests of one peer
// connection to s (wire.ProtocolHTTP1); its header goes out with the first
// request. Nil if the client cannot be reached.
func (m *Manager) openConnStream(s *subscription, info connInfo) *http1.Conn {
	stream, bw, err := m.openStreamBuffered(s, &wire.IncomingConnection{
		Subscription: s.id, Connection: info.id, Mode: wire.ModeSteal, Port: info.port,
		Source: info.source.String(), Destination: info.dest.String(), Protocol: wire.ProtocolHTTP1,
	})
	if err != nil {
		m.log.Warn("stealing client unreachable; passing the request to the application", "subscription", s.id, "client", s.client.Name(), "err", err)
		return nil
	}
	s.connections.Add(1)
	return &http1.Conn{Conn: stream, R: bufio.NewReader(stream), W: bw}
}
