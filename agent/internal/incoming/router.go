package incoming

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/remocal/remocal/internal/http1"
	"github.com/remocal/remocal/internal/relay"
	"github.com/remocal/remocal/protocol/wire"
)

const (
	// sniffTimeout bounds the wait for a connection's first bytes. A
	// protocol where the server speaks first would otherwise never get its
	// greeting; after the timeout the connection passes through unfiltered.
	sniffTimeout = time.Second
	// mirrorBodyLimit bounds the request body kept in memory to give
	// filtered mirrors their copy. Larger requests still reach their
	// destination but are not mirrored.
	mirrorBodyLimit = 1 << 20
)

var http2Preface = []byte("PRI * HTTP/2.0\r\n")

// serveHTTP routes each HTTP/1.x request of a connection on its own: to the
// first matching stealing subscription, or else to the application; matching
// filtered mirrors get a copy. HTTP/2 is routed stream by stream (h2.go).
// Anything else passes through untouched.
func (m *Manager) serveHTTP(conn net.Conn, info connInfo) {
	down := http1.NewConn(conn)
	switch sniff(conn, down.R, sniffTimeout) {
	case protoHTTP1:
	case protoHTTP2:
		m.serveH2(down, info, nil)
		return
	default:
		m.passThrough(down, info)
		return
	}
	var app *http1.Conn // the connection to the application, opened on first use
	stolen := stolenStreams{}
	defer func() {
		if app != nil {
			app.Close()
		}
		stolen.closeAll()
	}()
	for seq := uint64(1); ; seq++ {
		req, err := down.ReadRequest()
		if err != nil {
			m.refuseRequest(down, info, err)
			return
		}
		stolen.dropRemoved()
		if isH2CUpgrade(req) {
			if m.upgradeH2C(down, info, req) {
				return
			}
			dropUpgrade(req)
		}
		r := m.requestRoute(info.port, req)
		if r.steal != nil && isProbeRequest(req) && m.fromNode(info.source.Addr()) {
			r.steal = nil
		}
		if len(r.mirrors) > 0 {
			m.mirrorRequest(req, r.mirrors, info, seq)
		}
		if r.steal != nil {
			if res, ok, err := m.stealRequest(down, info, r.steal, req, seq, stolen); ok {
				if http1.IsNoResponse(err) {
					http1.WriteError(down, http.StatusBadGateway, "remocal: the stealing client gave no response: "+err.Error())
					return
				}
				if err != nil || !res.DownKeepAlive {
					return
				}
				continue
			}
		}
		reused := app != nil
		if app == nil {
			if app, err = m.dialAppHTTP(info); err != nil {
				http1.WriteError(down, http.StatusBadGateway, "remocal: the application is unreachable: "+err.Error())
				return
			}
		}
		res, err := http1.Exchange(down, app, req)
		if reused && http1.IsNoResponse(err) && http1.Replayable(req) {
			// The application closed the idle connection as the request
			// went out; a fresh connection gets the request through.
			app.Close()
			if app, err = m.dialAppHTTP(info); err != nil {
				http1.WriteError(down, http.StatusBadGateway, "remocal: the application is unreachable: "+err.Error())
				return
			}
			res, err = http1.Exchange(down, app, req)
		}
		if http1.IsNoResponse(err) {
			http1.WriteError(down, http.StatusBadGateway, "remocal: the application gave no response: "+err.Error())
			return
		}
		if !res.UpReusable {
			app.Close()
			app = nil
		}
		if err != nil || !res.DownKeepAlive {
			return
		}
	}
}

// refuseRequest answers a request that could not be read, as a server
// would, unless the peer is simply gone.
func (m *Manager) refuseRequest(down *http1.Conn, info connInfo, err error) {
	switch {
	case errors.Is(err, http1.ErrHeadTooLarge):
		m.log.Warn("request head too large; closing the connection", "connection", info.id, "source", info.source, "limit", http1.MaxHeadBytes)
		http1.WriteError(down, http.StatusRequestHeaderFieldsTooLarge,
			"remocal: the request head (request line and headers) is larger than 1 MiB, the most remocal reads on a port with HTTP filters; send smaller headers")
	case errors.Is(err, http1.ErrHeadTimeout):
		m.log.Warn("request head incomplete in time; closing the connection", "connection", info.id, "source", info.source, "timeout", http1.HeadTimeout)
		http1.WriteError(down, http.StatusRequestTimeout,
			"remocal: the request head did not arrive within 30s of its first byte; send the request line and headers at once")
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
	default:
		http1.WriteError(down, http.StatusBadRequest, "remocal: malformed HTTP request: "+err.Error())
	}
}

func (m *Manager) dialAppHTTP(info connInfo) (*http1.Conn, error) {
	c, err := m.dialApp(info)
	if err != nil {
		return nil, err
	}
	return http1.NewConn(c), nil
}

type proto int

const (
	protoOther proto = iota
	protoHTTP1
	protoHTTP2
)

// sniff classifies a connection by its first bytes without consuming them,
// waiting at most timeout for them.
func sniff(c net.Conn, br *bufio.Reader, timeout time.Duration) proto {
	c.SetReadDeadline(time.Now().Add(timeout))
	_, err := br.Peek(1)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		return protoOther
	}
	head, _ := br.Peek(min(br.Buffered(), len(http2Preface)))
	return sniffHead(head)
}

// sniffHead classifies a connection by the first bytes it sent (at least
// one; sniff passes at most len(http2Preface) of them).
func sniffHead(head []byte) proto {
	if len(head) >= 3 && bytes.HasPrefix(http2Preface, head) {
		return protoHTTP2
	}
	// An HTTP/1 request starts with a method token: upper-case letters.
	for i, b := range head {
		if b == ' ' && i > 0 {
			return protoHTTP1
		}
		if b < 'A' || b > 'Z' {
			return protoOther
		}
	}
	return protoHTTP1
}

// openRequestStream opens a stream for one stolen request. The header stays
// buffered so that it crosses together with the request.
func (m *Manager) openRequestStream(s *subscription, info connInfo, seq uint64) (*http1.Conn, bool) {
	stream, bw, err := m.openStreamBuffered(s, &wire.IncomingRequest{
		Subscription: s.id, Connection: info.id, Request: seq, Mode: wire.ModeSteal, Port: info.port,
		Source: info.source.String(), Destination: info.dest.String(),
	})
	if err != nil {
		m.log.Warn("stealing client unreachable; passing the request to the application", "subscription", s.id, "client", s.client.Name(), "err", err)
		return nil, false
	}
	s.requests.Add(1)
	return &http1.Conn{Conn: stream, R: bufio.NewReader(stream), W: bw}, true
}

// mirrorRequest sends copies of req to filtered mirrors. The body is read
// into memory (up to mirrorBodyLimit) and req.Body replaced so the request
// still reaches its real destination intact.
func (m *Manager) mirrorRequest(req *http.Request, mirrors []*subscription, info connInfo, seq uint64) {
	body, whole, err := readUpTo(req.Body, mirrorBodyLimit)
	if whole {
		req.Body = io.NopCloser(bytes.NewReader(body))
	} else {
		req.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), req.Body), req.Body}
	}
	if err != nil || !whole {
		m.log.Warn("request body too large to mirror; the request is delivered but not mirrored", "connection", info.id, "limit", mirrorBodyLimit)
		return
	}
	for _, s := range mirrors {
		copyReq := req.Clone(m.ctx)
		copyReq.Body = io.NopCloser(bytes.NewReader(body))
		http1.KeepDefaultUserAgent(copyReq)
		s.requests.Add(1)
		m.wg.Go(func() {
			stream, bw, err := m.openStreamBuffered(s, &wire.IncomingRequest{
				Subscription: s.id, Connection: info.id, Request: seq, Mode: wire.ModeMirror, Port: info.port,
				Source: info.source.String(), Destination: info.dest.String(),
			})
			if err != nil {
				m.log.Warn("mirroring client unreachable", "subscription", s.id, "client", s.client.Name(), "err", err)
				return
			}
			stream.SetWriteDeadline(time.Now().Add(mirrorWriteDeadline))
			if err := copyReq.Write(bw); err != nil || bw.Flush() != nil {
				relay.Abort(stream)
				return
			}
			// Mirror clients' answers are not wanted; closing our half tells
			// the client the request is complete.
			stream.Close()
		})
	}
}

// readUpTo reads r until EOF or limit bytes. whole is false if r has more.
func readUpTo(r io.Reader, limit int64) (data []byte, whole bool, err error) {
	if r == nil || r == http.NoBody {
		return nil, true, nil
	}
	data, err = io.ReadAll(io.LimitReader(r, limit+1))
	if int64(len(data)) > limit {
		return data, false, err
	}
	return data, err == nil, err
}
