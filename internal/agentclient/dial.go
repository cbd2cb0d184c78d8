package agentclient

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/remocal/remocal/protocol/wire"
)

// DialContext connects to a numeric address from inside the target's
// network. For "udp" the returned connection keeps datagram boundaries: each
// Write sends one datagram and each Read returns one.
func (c *Client) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	stream, res, err := c.DialStream(ctx, &wire.Dial{Network: network, Address: address})
	if err != nil {
		return nil, err
	}
	conn := &remoteConn{Conn: stream, local: parseAddr(network, res.Local), remote: parseAddr(network, res.Remote)}
	if network == "udp" {
		return &datagramConn{remoteConn: conn, rbuf: make([]byte, wire.MaxDatagramSize)}, nil
	}
	return conn, nil
}

// DialStream is DialContext's stream as it is on the wire: after the
// result, raw TCP bytes or length-prefixed datagrams (wire.ReadDatagram).
// A broker splices it to its client's stream unchanged. The agent's
// refusal is its *wire.Error.
func (c *Client) DialStream(ctx context.Context, req *wire.Dial) (net.Conn, *wire.DialResult, error) {
	network, address := req.Network, req.Address
	if err := req.Validate(); err != nil {
		return nil, nil, wire.Errorf(wire.CodeInvalid, "%v", err)
	}
	stream, err := c.openStream(ctx)
	if err != nil {
		return nil, nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		stream.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { stream.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := wire.WriteMessage(stream, 0, req); err != nil {
		stream.Close()
		return nil, nil, fmt.Errorf("dial %s %s through the agent: %w", network, address, err)
	}
	res, err := wire.ReadMessage[*wire.DialResult](stream, wire.MaxHandshakeFrameSize)
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		stream.Close()
		return nil, nil, err
	}
	stream.SetDeadline(time.Time{})
	return stream, res, nil
}

func (c *Client) openStream(ctx context.Context) (net.Conn, error) {
	select {
	case <-c.done:
		return nil, fmt.Errorf("agent connection is closed: %w", c.Err())
	default:
	}
	st, err := c.mux.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("open stream to agent: %w", err)
	}
	return st, nil
}

// remoteConn reports the addresses the target-side socket has.
type remoteConn struct {
	net.Conn
	local, remote net.Addr
}

// CloseWrite sends EOF to the remote end and keeps reading its reply;
// yamux's Close is already such a half-close.
func (r *remoteConn) CloseWrite() error { return r.Conn.Close() }

func (r *remoteConn) LocalAddr() net.Addr  { return r.local }
func (r *remoteConn) RemoteAddr() net.Addr { return r.remote }

func parseAddr(network, s string) net.Addr {
	if network == "udp" {
		a, _ := net.ResolveUDPAddr("udp", s)
		return a
	}
	a, _ := net.ResolveTCPAddr("tcp", s)
	return a
}

// datagramConn frames datagrams over a stream.
type datagramConn struct {
	*remoteConn
	wmu  sync.Mutex
	wbuf []byte
	rmu  sync.Mutex
	rbuf []byte
}

func (d *datagramConn) Write(p []byte) (int, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	var err error
	d.wbuf, err = wire.AppendDatagram(d.wbuf[:0], p)
	if err != nil {
		return 0, err
	}
	if _, err := d.remoteConn.Write(d.wbuf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Read returns one datagram; like a UDP socket, it truncates a datagram
// longer than p.
func (d *datagramConn) Read(p []byte) (int, error) {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	n, err := wire.ReadDatagram(d.remoteConn.Conn, d.rbuf)
	if err != nil {
		return 0, err
	}
	return copy(p, d.rbuf[:n]), nil
}
