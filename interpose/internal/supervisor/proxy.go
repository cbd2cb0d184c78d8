package supervisor

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/relay"
	"github.com/remocal/remocal/interpose/internal/rules"
	"github.com/remocal/remocal/interpose/internal/seccomp"
	"github.com/remocal/remocal/protocol/wire"
)

// How outgoing connections reach the target: the supervisor dials the
// destination through the agent first (so the program's connect fails with
// the target's own error), then binds the program's socket to a loopback
// port, records port → agent connection, and connects the socket to the
// local proxy, which pairs the accepted connection with the recorded one.
// getpeername is answered with the original destination. For a local
// target whose namespace the supervisor can enter, TCP skips all of this:
// see direct.go.

const (
	outgoingDialTimeout = 15 * time.Second
	udpIdle             = 2 * time.Minute
)

// pendingTCP is an agent connection waiting for the program's socket to
// reach the proxy; inode identifies that socket for getpeername.
type pendingTCP struct {
	conn  net.Conn
	inode uint64
	dns   bool // split DNS queries by name instead of relaying bytes
}

// flowKey is the program's socket as the proxy sees it arrive: its full
// source address (IPv4-mapped addresses unmapped, as the IPv4 listener
// reports them), not its port alone. Any local process can bind another
// loopback address (127.0.0.2) with the same port and reach the proxy;
// matching on the port alone would hand it the program's connection
// through the target, or the program's UDP flow.
type flowKey struct{ src netip.AddrPort }

// keyOf is the key of a program's socket bound to local, which connects
// to the proxy at loop: an unspecified address becomes the one the kernel
// picks to reach loop.
func keyOf(local netip.AddrPort, loop netip.Addr) flowKey {
	addr := local.Addr()
	if addr.IsUnspecified() {
		addr = loop
	}
	return flowKey{src: netip.AddrPortFrom(addr.Unmap(), local.Port())}
}

// peerKey is the key of a connection or datagram arriving from src.
func peerKey(src netip.AddrPort) flowKey {
	return flowKey{src: netip.AddrPortFrom(src.Addr().Unmap(), src.Port())}
}

type proxy struct {
	s *Supervisor

	tcp  map[bool]*net.TCPListener // by v6
	udp  map[bool]*net.UDPConn
	mu   sync.Mutex
	tcpQ map[flowKey]pendingTCP // agent connections waiting for the program's connection
	udpF map[flowKey]*udpFlow
	// peers maps a socket's inode to the destination the program asked
	// for, for getpeername.
	peers map[uint64]netip.AddrPort
	// locals maps a redirected TCP socket's inode to the address of the
	// agent's socket in the target, for getsockname.
	locals map[uint64]netip.AddrPort
	// active are the relays' program-side connections, closed when the
	// supervisor stops: programs that outlive the session keep their
	// sockets, but remocal must not wait for them to hang up.
	active map[net.Conn]struct{}
	closed bool
}

func newProxy(s *Supervisor) (*proxy, error) {
	p := &proxy{s: s, tcp: map[bool]*net.TCPListener{}, udp: map[bool]*net.UDPConn{},
		tcpQ: map[flowKey]pendingTCP{}, udpF: map[flowKey]*udpFlow{}, peers: map[uint64]netip.AddrPort{},
		locals: map[uint64]netip.AddrPort{}, active: map[net.Conn]struct{}{}}
	for _, v6 := range []bool{false, true} {
		ip := net.IPv4(127, 0, 0, 1)
		if v6 {
			ip = net.IPv6loopback
		}
		tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip})
		if err != nil {
			if v6 {
				continue // no IPv6 loopback: IPv6 sockets use IPv4-mapped addresses
			}
			return nil, err
		}
		ul, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
		if err != nil {
			tl.Close()
			if v6 {
				continue
			}
			return nil, err
		}
		p.tcp[v6], p.udp[v6] = tl, ul
		s.wg.Go(func() { p.acceptTCP(tl) })
		s.wg.Go(func() { p.readUDP(ul) })
	}
	return p, nil
}

func (p *proxy) close() {
	for _, l := range p.tcp {
		l.Close()
	}
	for _, u := range p.udp {
		u.Close()
	}
	p.mu.Lock()
	p.closed = true
	for c := range p.active {
		c.Close()
	}
	for k, pt := range p.tcpQ {
		pt.conn.Close()
		delete(p.tcpQ, k)
	}
	for _, f := range p.udpF {
		f.close()
	}
	p.mu.Unlock()
}

// connect decides on a connect(2) and, for remote destinations, hands the
// work to a goroutine: it waits on the network.
func (p *proxy) connect(c *call) {
	length := c.arg(2)
	if length < 2 || length > 128 {
		c.cont()
		return
	}
	buf := make([]byte, length)
	if err := seccomp.ReadMemory(c.tid, c.arg(1), buf); err != nil {
		if !c.denied(err) {
			c.cont()
		}
		return
	}
	dest, ok := parseSockaddr(buf)
	if !ok || (p.s.cfg.Outgoing.Where("tcp", dest) == rules.Local && p.s.cfg.Outgoing.Where("udp", dest) == rules.Local) {
		c.cont()
		return
	}
	fd, ok := c.socketFD()
	if !ok {
		return
	}
	network := socketNetwork(fd)
	if network == "" || p.s.cfg.Outgoing.Where(network, dest) == rules.Local || !c.valid() {
		unix.Close(fd)
		c.cont()
		return
	}
	dest = netip.AddrPortFrom(dest.Addr().Unmap(), dest.Port())
	if !p.s.carryDevice(c, fd) { // tfo.go
		unix.Close(fd)
		return
	}
	c.async(func(c *call) {
		defer unix.Close(fd)
		if network == "tcp" {
			if !p.connectDirect(c, fd, dest) { // direct.go
				p.connectTCP(c, fd, dest)
			}
		} else {
			p.connectUDP(c, fd, dest)
		}
	})
}

func socketNetwork(fd int) string {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return ""
	}
	switch typ {
	case unix.SOCK_STREAM:
		return "tcp"
	case unix.SOCK_DGRAM:
		return "udp"
	}
	return ""
}

func (p *proxy) connectTCP(c *call, fd int, dest netip.AddrPort) {
	ctx, cancel := context.WithTimeout(p.s.ctx, outgoingDialTimeout)
	conn, err := p.s.agent().DialContext(ctx, "tcp", dest.String())
	cancel()
	if err != nil {
		p.s.log.Debug("outgoing connection refused by the target", "dest", dest, "err", err)
		c.fail(errnoOf(err, unix.ENETUNREACH))
		return
	}
	key, proxyAddr, err := p.bindLoopback(fd, p.tcp)
	if err != nil {
		conn.Close()
		c.fail(unix.EADDRNOTAVAIL)
		return
	}
	ino := inode(fd)
	p.mu.Lock()
	p.tcpQ[key] = pendingTCP{conn: conn, inode: ino, dns: p.s.splitsDNS(dest)}
	p.peers[ino] = dest
	if local, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil {
		p.locals[ino] = unmapped(local)
	}
	p.mu.Unlock()
	err = unix.Connect(fd, sockaddrOf(proxyAddr))
	switch {
	case err == nil:
		c.ret(0)
	case errors.Is(err, unix.EINPROGRESS):
		c.fail(unix.EINPROGRESS)
	default:
		p.mu.Lock()
		delete(p.tcpQ, key)
		delete(p.peers, ino)
		delete(p.locals, ino)
		p.mu.Unlock()
		conn.Close()
		c.fail(errnoOf(err, unix.ECONNREFUSED))
		return
	}
	p.s.stats.remote("connect")
}

// bindLoopback binds the program's socket to a loopback port of its family
// (unless it is bound already) and returns its key and the proxy address to
// connect to.
func (p *proxy) bindLoopback(fd int, listeners any) (flowKey, netip.AddrPort, error) {
	family, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return flowKey{}, netip.AddrPort{}, err
	}
	v6 := family == unix.AF_INET6
	var loop netip.Addr
	switch {
	case !v6:
		loop = netip.MustParseAddr("127.0.0.1")
	case p.tcp[true] != nil:
		loop = netip.IPv6Loopback()
	default:
		loop = netip.MustParseAddr("::ffff:127.0.0.1")
	}
	if err := unix.Bind(fd, sockaddrOf(netip.AddrPortFrom(loop, 0))); err != nil && !errors.Is(err, unix.EINVAL) {
		return flowKey{}, netip.AddrPort{}, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return flowKey{}, netip.AddrPort{}, err
	}
	local, _ := addrPortOf(sa)
	useV6 := v6 && p.tcp[true] != nil
	var proxyPort uint16
	switch l := listeners.(type) {
	case map[bool]*net.TCPListener:
		proxyPort = uint16(l[useV6].Addr().(*net.TCPAddr).Port)
	case map[bool]*net.UDPConn:
		proxyPort = uint16(l[useV6].LocalAddr().(*net.UDPAddr).Port)
	}
	return keyOf(local, loop), netip.AddrPortFrom(loop, proxyPort), nil
}

func inode(fd int) uint64 {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0
	}
	return st.Ino
}

func (p *proxy) acceptTCP(l *net.TCPListener) {
	for {
		conn, err := l.AcceptTCP()
		if err != nil {
			return
		}
		key := peerKey(conn.RemoteAddr().(*net.TCPAddr).AddrPort())
		p.mu.Lock()
		pt, ok := p.tcpQ[key]
		delete(p.tcpQ, key)
		if ok && !p.closed {
			p.active[conn] = struct{}{}
		}
		p.mu.Unlock()
		if !ok {
			conn.Close() // nobody we redirected: a stray local connection
			continue
		}
		p.s.wg.Go(func() {
			defer conn.Close()
			defer pt.conn.Close()
			if pt.dns {
				p.s.splitDNSOverTCP(conn, pt.conn)
			} else {
				relay.Conns(conn, pt.conn)
			}
			p.mu.Lock()
			delete(p.peers, pt.inode)
			delete(p.locals, pt.inode)
			delete(p.active, conn)
			p.mu.Unlock()
		})
	}
}

// empty reports whether no socket is redirected.
func (p *proxy) empty() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.peers) == 0
}

// names reports the addresses a redirected socket shows: its destination
// (peer) or the agent's socket in the target (local, known for TCP).
func (p *proxy) names(ino uint64, peer bool) (netip.AddrPort, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if peer {
		ap, ok := p.peers[ino]
		return ap, ok
	}
	ap, ok := p.locals[ino]
	return ap, ok
}

// udpFlow carries one connected UDP socket's datagrams through the agent.
type udpFlow struct {
	p    *proxy
	key  flowKey
	dest netip.AddrPort
	src  netip.AddrPort // the program's socket, where replies go

	mu   sync.Mutex
	conn net.Conn
}

func (p *proxy) connectUDP(c *call, fd int, dest netip.AddrPort) {
	key, proxyAddr, err := p.bindLoopback(fd, p.udp)
	if err != nil {
		c.fail(unix.EADDRNOTAVAIL)
		return
	}
	sa, _ := unix.Getsockname(fd)
	src, _ := addrPortOf(sa)
	f := &udpFlow{p: p, key: key, dest: dest, src: src}
	ino := inode(fd)
	p.mu.Lock()
	if old := p.udpF[key]; old != nil {
		old.close()
	}
	p.udpF[key] = f
	p.peers[ino] = dest
	p.mu.Unlock()
	if err := unix.Connect(fd, sockaddrOf(proxyAddr)); err != nil {
		c.fail(errnoOf(err, unix.ENETUNREACH))
		return
	}
	p.s.stats.remote("connect-udp")
	c.ret(0)
}

func (p *proxy) readUDP(u *net.UDPConn) {
	buf := make([]byte, wire.MaxDatagramSize)
	for {
		n, from, err := u.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		f := p.udpF[peerKey(from)]
		p.mu.Unlock()
		if f != nil {
			f.send(u, buf[:n])
		}
	}
}

// send forwards a datagram, dialling (again) through the agent when the
// flow has no live stream: the agent ends idle UDP streams, but the
// program's socket stays connected.
func (f *udpFlow) send(u *net.UDPConn, data []byte) {
	if f.p.s.splitsDNS(f.dest) && f.p.s.isLocalQuery(data) {
		if resp, err := f.p.s.localAnswer(data); err == nil {
			u.WriteToUDPAddrPort(resp, f.src)
		}
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn == nil {
		ctx, cancel := context.WithTimeout(f.p.s.ctx, outgoingDialTimeout)
		conn, err := f.p.s.agent().DialContext(ctx, "udp", f.dest.String())
		cancel()
		if err != nil {
			return // like a datagram lost on the way
		}
		f.conn = conn
		f.p.s.wg.Go(func() { f.replies(u, conn) })
	}
	f.conn.Write(data)
}

func (f *udpFlow) replies(u *net.UDPConn, conn net.Conn) {
	buf := make([]byte, wire.MaxDatagramSize)
	for {
		conn.SetReadDeadline(time.Now().Add(udpIdle))
		n, err := conn.Read(buf)
		if err != nil {
			break
		}
		u.WriteToUDPAddrPort(buf[:n], f.src)
	}
	conn.Close()
	f.mu.Lock()
	if f.conn == conn {
		f.conn = nil
	}
	f.mu.Unlock()
}

func (f *udpFlow) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
}
