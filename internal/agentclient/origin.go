package agentclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// OriginFunc is told, before a Forwarder connects to the local server, the
// address the connection will come from (its loopback source) and the
// delivery it carries. The function it returns runs once that connection
// is closed. An interposing supervisor uses it to show the local server the
// peer and address the delivery had in the target: the accepted socket's
// peer is local.
type OriginFunc func(local netip.AddrPort, in *Incoming) (done func())

// WithOrigin makes f report its connections to fn. HTTP requests are then
// sent to the local server over connections kept per peer connection
// (Incoming.Source), never over one that carried another peer's requests.
func (f *Forwarder) WithOrigin(fn OriginFunc) *Forwarder {
	f.origin = fn
	return f
}

// poolKey is the keep-alive pool a delivery's requests use.
func (f *Forwarder) poolKey(in *Incoming) string {
	if f.origin == nil || in == nil {
		return ""
	}
	return in.Source()
}

// dialLocal connects to the local server; with an origin function, from a
// loopback port bound first and reported before the connection exists, so
// the server cannot accept it before the supervisor knows it.
func (f *Forwarder) dialLocal(ctx context.Context, in *Incoming) (net.Conn, error) {
	if f.origin == nil || in == nil {
		return f.dialer.DialContext(ctx, "tcp", f.addr)
	}
	dest, err := netip.ParseAddrPort(f.addr)
	if err != nil {
		return nil, fmt.Errorf("forward address %q: %w", f.addr, err)
	}
	var done func()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var berr error
		cerr := rc.Control(func(fd uintptr) { done, berr = f.bindOrigin(int(fd), dest.Addr(), in) })
		return errors.Join(cerr, berr)
	}}
	c, err := d.DialContext(ctx, "tcp", f.addr)
	if err != nil {
		if done != nil {
			done()
		}
		return nil, err
	}
	return &originConn{Conn: c, done: done}, nil
}

func (f *Forwarder) bindOrigin(fd int, loop netip.Addr, in *Incoming) (func(), error) {
	var sa unix.Sockaddr = &unix.SockaddrInet4{Addr: loop.Unmap().As4()}
	if loop.Is6() && !loop.Is4In6() {
		sa = &unix.SockaddrInet6{Addr: loop.As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind the connection to the local server: %w", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("bind the connection to the local server: %w", err)
	}
	var local netip.AddrPort
	switch v := got.(type) {
	case *unix.SockaddrInet4:
		local = netip.AddrPortFrom(netip.AddrFrom4(v.Addr), uint16(v.Port))
	case *unix.SockaddrInet6:
		local = netip.AddrPortFrom(netip.AddrFrom16(v.Addr), uint16(v.Port))
	}
	return f.origin(local, in), nil
}

// originConn runs its origin's done function once, when closed.
type originConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *originConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.done)
	return err
}

// CloseWrite keeps half-closes working through the wrapper.
func (c *originConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}
