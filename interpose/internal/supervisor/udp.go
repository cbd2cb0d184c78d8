package supervisor

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/rules"
	"github.com/remocal/remocal/protocol/wire"
)

// Datagrams sent to an address on a socket that is not connected (musl's
// resolver: sendto to each nameserver, recvfrom, and only replies from an
// address it sent to count) go through the target like connected ones, but
// the socket cannot be connected to the proxy: it may send anywhere and
// receive from anyone. So the supervisor sends such a datagram itself,
// through a flow (program socket, destination) relayed by the agent, and
// answers sendto with its length. Replies reach the program's socket from a
// "phantom": a loopback socket of the supervisor's standing for one
// destination. recvfrom and recvmsg on a socket that has flows are then
// carried out by the supervisor, which reports the phantom's destination as
// the source, as the program would have seen it in the pod.

// flowQueue bounds the datagrams waiting for a flow's agent stream; more
// are dropped, as a full socket buffer would.
const flowQueue = 64

type datagrams struct {
	s *Supervisor

	mu    sync.Mutex
	socks map[uint64]*dsock // by the program socket's inode
	// phantoms stand for destinations; byAddr maps a phantom's loopback
	// address back to its destination.
	phantoms map[phantomKey]*phantom
	byAddr   map[netip.AddrPort]netip.AddrPort
	closed   bool
	// tracked is len(socks): recvfrom and recvmsg need no look at the
	// socket while no program socket has flows.
	tracked atomic.Int32
}

// dsock is a program socket that sent through the target.
type dsock struct {
	ino    uint64
	family int
	to     netip.AddrPort // where phantoms deliver replies
	flows  map[netip.AddrPort]*dflow
}

type phantomKey struct {
	dest netip.AddrPort
	v6   bool
}

type phantom struct {
	key   phantomKey
	conn  *net.UDPConn
	users int
}

func newDatagrams(s *Supervisor) *datagrams {
	return &datagrams{s: s, socks: map[uint64]*dsock{}, phantoms: map[phantomKey]*phantom{},
		byAddr: map[netip.AddrPort]netip.AddrPort{}}
}

func (d *datagrams) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for _, ds := range d.socks {
		for _, f := range ds.flows {
			f.stop()
		}
	}
	for _, ph := range d.phantoms {
		ph.conn.Close()
	}
}

// remote decides whether a datagram or Fast Open connection to dest goes
// through the target: as the outgoing rules say, except that with outgoing
// UDP off, DNS queries still do whenever the target's DNS is in use: the
// program reads the target's resolv.conf, so its queries are meant for the
// target's nameserver. (With UDP on, the rules' filter decides, so a
// nameserver the user keeps local stays local.)
func (d *datagrams) remote(network string, dest netip.AddrPort) bool {
	out := d.s.cfg.Outgoing
	if out.Where(network, dest) == rules.Remote {
		return true
	}
	a := dest.Addr().Unmap()
	return network == "udp" && !out.Enabled("udp") && d.s.cfg.DNS && dest.Port() == 53 && !a.IsLoopback() && !a.IsUnspecified()
}

// socket registers the program's socket fd (taken from the program) as
// one that sends through the target: bound, so replies can reach it, and
// known by inode. A socket the program never bound gets an ephemeral port
// on the wildcard address, what the kernel would have given it on send.
func (d *datagrams) socket(fd int) (*dsock, error) {
	ino := inode(fd)
	d.mu.Lock()
	ds := d.socks[ino]
	d.mu.Unlock()
	if ds != nil {
		return ds, nil
	}
	family, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return nil, err
	}
	local, err := sockName(fd)
	if err != nil {
		return nil, err
	}
	if local.Port() == 0 {
		any := netip.IPv4Unspecified()
		if family == unix.AF_INET6 {
			any = netip.IPv6Unspecified()
		}
		if err := unix.Bind(fd, sockaddrOf(netip.AddrPortFrom(any, 0))); err != nil && !errors.Is(err, unix.EINVAL) {
			return nil, err
		}
		if local, err = sockName(fd); err != nil {
			return nil, err
		}
	}
	to := local
	if local.Addr().IsUnspecified() {
		loop := netip.MustParseAddr("127.0.0.1")
		if family == unix.AF_INET6 && d.s.proxy.tcp[true] != nil {
			loop = netip.IPv6Loopback()
		}
		to = netip.AddrPortFrom(loop, local.Port())
	}
	ds = &dsock{ino: ino, family: family, to: to, flows: map[netip.AddrPort]*dflow{}}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.socks[ino]; old != nil {
		return old, nil
	}
	d.socks[ino] = ds
	d.tracked.Store(int32(len(d.socks)))
	return ds, nil
}

func sockName(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap, ok := addrPortOf(sa)
	if !ok {
		return netip.AddrPort{}, unix.EAFNOSUPPORT
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// enqueue hands one datagram to the flow of (ds, dest), starting it if
// needed. It never waits on the network.
func (d *datagrams) enqueue(ds *dsock, dest netip.AddrPort, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return unix.ENETDOWN
	}
	f := ds.flows[dest]
	if f == nil {
		ph, err := d.phantomLocked(phantomKey{dest: dest, v6: ds.to.Addr().Is6()})
		if err != nil {
			return err
		}
		f = &dflow{d: d, sock: ds, dest: dest, ph: ph, q: make(chan []byte, flowQueue), done: make(chan struct{})}
		ds.flows[dest] = f
		d.s.wg.Go(f.run)
	}
	select {
	case f.q <- data:
	default: // full: dropped, as by a full socket buffer
	}
	return nil
}

// phantomLocked returns the phantom of a destination, opening it on first
// use; d.mu is held.
func (d *datagrams) phantomLocked(k phantomKey) (*phantom, error) {
	if ph := d.phantoms[k]; ph != nil {
		ph.users++
		return ph, nil
	}
	ip := net.IPv4(127, 0, 0, 1)
	if k.v6 {
		ip = net.IPv6loopback
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		return nil, err
	}
	ph := &phantom{key: k, conn: conn, users: 1}
	d.phantoms[k] = ph
	d.byAddr[phantomAddr(conn)] = k.dest
	return ph, nil
}

func phantomAddr(c *net.UDPConn) netip.AddrPort {
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// release ends a flow's hold on its socket entry and phantom.
func (d *datagrams) release(f *dflow) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if f.sock.flows[f.dest] == f {
		delete(f.sock.flows, f.dest)
	}
	if len(f.sock.flows) == 0 && d.socks[f.sock.ino] == f.sock {
		delete(d.socks, f.sock.ino)
		d.tracked.Store(int32(len(d.socks)))
	}
	if f.ph.users--; f.ph.users == 0 {
		delete(d.phantoms, f.ph.key)
		delete(d.byAddr, phantomAddr(f.ph.conn))
		f.ph.conn.Close()
	}
}

// source maps the address a datagram came from to the one the program
// should see: a phantom's destination, or the address itself.
func (d *datagrams) source(from netip.AddrPort) netip.AddrPort {
	key := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	d.mu.Lock()
	dest, ok := d.byAddr[key]
	d.mu.Unlock()
	if ok {
		return dest
	}
	return from
}

// dflow relays the datagrams of one program socket to one destination.
type dflow struct {
	d    *datagrams
	sock *dsock
	dest netip.AddrPort
	ph   *phantom
	q    chan []byte

	stopOnce sync.Once
	done     chan struct{}
}

func (f *dflow) stop() { f.stopOnce.Do(func() { close(f.done) }) }

// run dials the destination through the agent and relays until the
// stream ends or stays idle for udpIdle; a later datagram starts a new
// flow.
func (f *dflow) run() {
	defer f.d.release(f)
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	idle := time.NewTimer(udpIdle)
	defer idle.Stop()
	replies := make(chan struct{})
	for {
		select {
		case <-f.done:
			return
		case <-f.d.s.ctx.Done():
			return
		case <-idle.C:
			return
		case <-replies:
			return // the agent's stream ended
		case data := <-f.q:
			idle.Reset(udpIdle)
			if f.d.s.splitsDNS(f.dest) && f.d.s.isLocalQuery(data) {
				if resp, err := f.d.s.localAnswer(data); err == nil {
					f.deliver(resp)
				}
				continue
			}
			if conn == nil {
				var err error
				if conn, err = f.dial(); err != nil {
					f.d.s.log.Debug("datagram flow refused by the target", "dest", f.dest, "err", err)
					return // like a datagram lost on the way
				}
				f.d.s.wg.Go(func() { f.readReplies(conn, replies) })
			}
			conn.Write(data)
		}
	}
}

func (f *dflow) dial() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(f.d.s.ctx, outgoingDialTimeout)
	defer cancel()
	return f.d.s.agent().DialContext(ctx, "udp", f.dest.String())
}

func (f *dflow) readReplies(conn net.Conn, ended chan<- struct{}) {
	defer close(ended)
	buf := make([]byte, wire.MaxDatagramSize)
	for {
		conn.SetReadDeadline(time.Now().Add(udpIdle))
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		f.deliver(buf[:n])
	}
}

// deliver puts a reply into the program socket's queue, from the phantom.
func (f *dflow) deliver(data []byte) {
	f.ph.conn.WriteToUDPAddrPort(data, f.sock.to)
}
