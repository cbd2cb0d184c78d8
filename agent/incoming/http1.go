package incoming

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/remocal/remocal/agent/relay"
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
// filtered mirrors get a copy. Anything that is not HTTP/1.x passes through
// untouched. The sniffing and routing are per protocol, so HTTP/2 can be
// added beside this without touching the connection layer.
func (m *Manager) serveHTTP(down net.Conn, info connInfo) {
	br := bufio.NewReaderSize(down, 32<<10)
	switch sniff(down, br) {
	case protoHTTP1:
	case protoHTTP2:
		m.log.Info("HTTP/2 connection on a port with HTTP filters; filters apply to HTTP/1.x only, passing it to the application", "connection", info.id)
		m.passThrough(&bufferedConn{Conn: down, r: br}, info)
		return
	default:
		m.passThrough(&bufferedConn{Conn: down, r: br}, info)
		return
	}
	var app *peer // the connection to the application, opened on first use
	defer func() {
		if app != nil {
			app.conn.Close()
		}
	}()
	for seq := uint64(1); ; seq++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				writeStatus(down, http.StatusBadRequest, "remocal: malformed HTTP request: "+err.Error())
			}
			return
		}
		r := m.requestRoute(info.port, req)
		if len(r.mirrors) > 0 {
			m.mirrorRequest(req, r.mirrors, info, seq)
		}
		var keepGoing bool
		if r.steal != nil {
			stolen, ok := m.openRequestStream(r.steal, info, seq)
			if ok {
				keepGoing = m.exchange(down, br, req, stolen)
				stolen.conn.Close()
				if !keepGoing {
					return
				}
				continue
			}
		}
		if app == nil || app.broken {
			if app != nil {
				app.conn.Close()
			}
			conn, err := m.dialApp(info)
			if err != nil {
				writeStatus(down, http.StatusBadGateway, "remocal: the application is unreachable: "+err.Error())
				return
			}
			app = &peer{conn: conn, r: bufio.NewReader(conn)}
		}
		if !m.exchange(down, br, req, app) {
			return
		}
	}
}

type proto int

const (
	protoOther proto = iota
	protoHTTP1
	protoHTTP2
)

// sniff classifies a connection by its first bytes without consuming them.
func sniff(c net.Conn, br *bufio.Reader) proto {
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	_, err := br.Peek(1)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		return protoOther
	}
	head, _ := br.Peek(min(br.Buffered(), len(http2Preface)))
	if bytes.HasPrefix(http2Preface, head) && len(head) >= 3 {
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

// peer is the other end of a request's exchange: the application or a
// stealing client's stream.
type peer struct {
	conn   net.Conn
	r      *bufio.Reader
	broken bool
}

// openRequestStream opens a stream for one stolen request.
func (m *Manager) openRequestStream(s *subscription, info connInfo, seq uint64) (*peer, bool) {
	stream, err := m.openStream(s, &wire.IncomingRequest{
		Subscription: s.id, Connection: info.id, Request: seq, Mode: wire.ModeSteal, Port: info.port,
		Source: info.source.String(), Destination: info.dest.String(),
	})
	if err != nil {
		m.log.Warn("stealing client unreachable; passing the request to the application", "subscription", s.id, "client", s.client.Name(), "err", err)
		return nil, false
	}
	s.requests.Add(1)
	return &peer{conn: stream, r: bufio.NewReader(stream)}, true
}

// exchange sends req to p and relays the response to down. It reports
// whether the downstream connection can carry another request.
//
// The request is written concurrently with reading the response: a server
// may answer before it has read the whole body, and a client that sent
// "Expect: 100-continue" waits for the interim response before the body.
func (m *Manager) exchange(down net.Conn, br *bufio.Reader, req *http.Request, p *peer) bool {
	wrote := make(chan error, 1)
	go func() { wrote <- req.Write(p.conn) }()
	for {
		resp, err := http.ReadResponse(p.r, req)
		if err != nil {
			p.broken = true
			relay.Abort(p.conn)
			<-wrote
			writeStatus(down, http.StatusBadGateway, "remocal: no response: "+err.Error())
			return false
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			err := resp.Write(down)
			<-wrote
			if err == nil {
				// The connection now speaks another protocol (WebSocket, ...):
				// from here on it is plain bytes between the two ends.
				relay.Conns(&bufferedConn{Conn: down, r: br}, &bufferedConn{Conn: p.conn, r: p.r})
			}
			p.broken = true
			return false
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			if err := resp.Write(down); err != nil {
				p.broken = true
				relay.Abort(p.conn)
				<-wrote
				return false
			}
			continue
		}
		werr := resp.Write(down)
		resp.Body.Close()
		if err := <-wrote; err != nil {
			p.broken = true
		}
		if resp.Close {
			p.broken = true
		}
		if werr != nil {
			p.broken = true
			return false
		}
		return !req.Close && !resp.Close
	}
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
		s.requests.Add(1)
		m.wg.Go(func() {
			stream, err := m.openStream(s, &wire.IncomingRequest{
				Subscription: s.id, Connection: info.id, Request: seq, Mode: wire.ModeMirror, Port: info.port,
				Source: info.source.String(), Destination: info.dest.String(),
			})
			if err != nil {
				m.log.Warn("mirroring client unreachable", "subscription", s.id, "client", s.client.Name(), "err", err)
				return
			}
			stream.SetWriteDeadline(time.Now().Add(mirrorWriteDeadline))
			if err := copyReq.Write(stream); err != nil {
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

// writeStatus answers with a short plain-text error and asks to close.
func writeStatus(w io.Writer, code int, msg string) {
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n",
		code, http.StatusText(code), len(msg)+1, msg)
}
