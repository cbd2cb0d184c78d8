package incoming

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/remocal/remocal/agent/internal/redirect"
	"github.com/remocal/remocal/internal/http1"
	"github.com/remocal/remocal/internal/relay"
	"github.com/remocal/remocal/protocol/wire"
)

// connInfo describes one redirected connection.
type connInfo struct {
	id     uint64
	port   uint16
	source netip.AddrPort
	dest   netip.AddrPort
}

const (
	appDialTimeout    = 10 * time.Second
	streamOpenTimeout = 5 * time.Second
)

func (m *Manager) serveConn(conn *net.TCPConn) {
	dest, err := redirect.OriginalDst(conn)
	if err != nil {
		m.log.Warn("refusing a connection to the redirect listener: cannot recover its original destination", "remote", conn.RemoteAddr(), "err", err)
		resetConn(conn)
		return
	}
	if !m.wasRedirected(dest.Port()) {
		// Not redirected by us: someone connected to the listener itself
		// (the guard rule drops that from outside; this is what is left,
		// such as a process in the target's namespace). Passing it through
		// would dial its destination, the listener, again, and so on until
		// the agent runs out of descriptors.
		m.log.Warn("refusing a connection to the redirect listener that no redirect sent there", "remote", conn.RemoteAddr(), "destination", dest)
		resetConn(conn)
		return
	}
	info := connInfo{
		id:     m.nextConn.Add(1),
		port:   dest.Port(),
		source: conn.RemoteAddr().(*net.TCPAddr).AddrPort(),
		dest:   dest,
	}
	info.source = netip.AddrPortFrom(info.source.Addr().Unmap(), info.source.Port())
	r, needHTTP := m.connRoute(info.port)

	var down net.Conn = conn
	if len(r.mirrors) > 0 {
		t := newTee(conn)
		for _, s := range r.mirrors {
			t.add(m.startMirror(s, info))
		}
		defer t.finish()
		down = t
	}
	switch {
	case r.steal != nil:
		if m.fromNode(info.source.Addr()) {
			hc := http1.NewConn(down)
			p := sniff(hc, hc.R, probeWait)
			if p == protoHTTP2 {
				// A kubelet gRPC probe is a stream of an HTTP/2
				// connection from the node: only routing stream by stream
				// can keep it from the stealing client.
				m.serveH2(hc, info, r.steal)
				return
			}
			// Silent for probeWait already: not a probe, no second wait.
			if p == protoHTTP1 && startsWithProbe(hc) {
				m.log.Debug("kubelet probe on a stolen port: passing it to the application", "connection", info.id, "source", info.source)
				m.passThrough(hc, info)
				return
			}
			down = hc
		}
		if m.stealConn(down, info, r.steal) {
			return
		}
		m.passThrough(down, info)
	case needHTTP:
		m.serveHTTP(down, info)
	default:
		m.passThrough(down, info)
	}
}

// wasRedirected reports whether port is one this manager redirects or
// redirected to its listener (and is not the listener's own port).
func (m *Manager) wasRedirected(port uint16) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return port != m.lisPort && m.redirected[port]
}

// stealConn hands the whole connection to the subscriber. It reports false if
// the subscriber could not be reached, so the caller can fall back to the
// application rather than drop the connection.
func (m *Manager) stealConn(down net.Conn, info connInfo, s *subscription) bool {
	stream, err := m.openStream(s, &wire.IncomingConnection{
		Subscription: s.id, Connection: info.id, Mode: wire.ModeSteal, Port: info.port,
		Source: info.source.String(), Destination: info.dest.String(),
	})
	if err != nil {
		m.log.Warn("stealing client unreachable; passing the connection to the application", "subscription", s.id, "client", s.client.Name(), "err", err)
		return false
	}
	defer stream.Close()
	s.connections.Add(1)
	relay.Conns(down, stream)
	return true
}

// openStream opens a stream to the subscriber and writes its header.
func (m *Manager) openStream(s *subscription, header wire.Message) (net.Conn, error) {
	stream, bw, err := m.openStreamBuffered(s, header)
	if err != nil {
		return nil, err
	}
	stream.SetWriteDeadline(time.Now().Add(streamOpenTimeout))
	defer stream.SetWriteDeadline(time.Time{})
	if err := bw.Flush(); err != nil {
		relay.Abort(stream)
		return nil, err
	}
	return stream, nil
}

// openStreamBuffered opens a stream to the subscriber with its header
// written into a buffer the caller flushes, typically together with the
// first payload.
func (m *Manager) openStreamBuffered(s *subscription, header wire.Message) (net.Conn, *bufio.Writer, error) {
	ctx, cancel := context.WithTimeout(m.ctx, streamOpenTimeout)
	defer cancel()
	stream, err := s.client.OpenStream(ctx)
	if err != nil {
		return nil, nil, err
	}
	bw := bufio.NewWriterSize(stream, 16<<10)
	if err := wire.WriteMessage(bw, 0, header); err != nil {
		relay.Abort(stream)
		return nil, nil, err
	}
	return stream, bw, nil
}

// dialApp connects to the application at the connection's original
// destination. The agent's own connection leaves through the output path, so
// the prerouting redirect does not catch it.
func (m *Manager) dialApp(info connInfo) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(m.ctx, appDialTimeout)
	defer cancel()
	return m.ns.DialContext(ctx, "tcp", info.dest.String())
}

func (m *Manager) passThrough(down net.Conn, info connInfo) {
	up, err := m.dialApp(info)
	if err != nil {
		m.log.Warn("connect to the application", "destination", info.dest, "err", err)
		resetConn(down)
		return
	}
	defer up.Close()
	relay.Conns(down, up)
}

// resetConn closes with RST so the peer sees the refusal it would have seen
// without remocal, not an orderly empty reply.
func resetConn(c net.Conn) {
	if tc, ok := underlyingTCP(c); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func underlyingTCP(c net.Conn) (*net.TCPConn, bool) {
	switch v := c.(type) {
	case *net.TCPConn:
		return v, true
	case *tee:
		return underlyingTCP(v.Conn)
	case *http1.Conn:
		return underlyingTCP(v.Conn)
	}
	return nil, false
}
