package supervisor

import (
	"encoding/binary"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/interpose/internal/seccomp"
)

// How a delivered connection shows the target's addresses: the agent says
// who connected to the target (Source) and where (Destination). The
// forwarder binds its connection to the program's listener to a loopback
// port before connecting and records port → origin here, so the
// accepted socket's peer (that loopback port) names its origin. accept,
// getpeername and getsockname on such a socket then report the origin.

// origin is where a delivered connection came from and went to in the
// target.
type origin struct{ peer, local netip.AddrPort }

type origins struct {
	mu sync.Mutex
	m  map[netip.AddrPort]origin // by the forwarder's loopback source
}

func newOrigins() *origins { return &origins{m: map[netip.AddrPort]origin{}} }

// add is the forwarder's agentclient.OriginFunc.
func (o *origins) add(from netip.AddrPort, in *agentclient.Incoming) func() {
	peer, err1 := netip.ParseAddrPort(in.Source())
	dest := ""
	if in.Request != nil {
		dest = in.Request.Destination
	} else if in.Connection != nil {
		dest = in.Connection.Destination
	}
	local, err2 := netip.ParseAddrPort(dest)
	if err1 != nil || err2 != nil {
		return func() {}
	}
	key := unmapped(from)
	o.mu.Lock()
	o.m[key] = origin{peer: unmapped(peer), local: unmapped(local)}
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		delete(o.m, key)
		o.mu.Unlock()
	}
}

// empty reports whether no delivered connection is open: calls on other
// sockets need not be looked at.
func (o *origins) empty() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.m) == 0
}

func (o *origins) lookup(from netip.AddrPort) (origin, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	v, ok := o.m[unmapped(from)]
	return v, ok
}

func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// sockName answers getpeername and getsockname for sockets whose
// addresses the supervisor changed: outgoing sockets it redirected (peer:
// the destination; local: the agent's socket in the target) and delivered
// connections (their origin). Everything else continues.
func (s *Supervisor) sockName(c *call, peer bool) {
	if s.origins.empty() && s.proxy.empty() {
		// Most calls, and cheap: no socket the supervisor touched.
		c.cont()
		return
	}
	fd, ok := c.socketFD()
	if !ok {
		return
	}
	family, ferr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if ferr != nil || (family != unix.AF_INET && family != unix.AF_INET6) {
		unix.Close(fd)
		c.cont()
		return
	}
	ap, ok := s.proxy.names(inode(fd), peer)
	if !ok {
		var o origin
		if o, ok = s.originOf(fd); ok {
			ap = o.local
			if peer {
				ap = o.peer
			}
		}
	}
	unix.Close(fd)
	if !ok || !fits(family, ap) {
		c.cont()
		return
	}
	s.writeSockaddr(c, c.arg(1), c.arg(2), encodeSockaddr(family, ap), func() { c.ret(0) })
}

// originOf finds a delivered connection by its peer, the forwarder's port.
func (s *Supervisor) originOf(fd int) (origin, bool) {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return origin{}, false
	}
	ap, ok := addrPortOf(sa)
	if !ok || !ap.Addr().Unmap().IsLoopback() {
		return origin{}, false
	}
	return s.origins.lookup(ap)
}

// fits reports whether ap can be shown on a socket of family: an IPv6
// peer cannot on an IPv4 socket.
func fits(family int, ap netip.AddrPort) bool {
	return ap.IsValid() && (family == unix.AF_INET6 || ap.Addr().Unmap().Is4())
}

// writeSockaddr writes sa into the caller's (addr, addrlen) pair as the
// kernel does — truncated to *addrlen, which is set to the full length —
// then completes the call with done. A NULL addr writes nothing.
func (s *Supervisor) writeSockaddr(c *call, addr, lenAddr uint64, sa []byte, done func()) {
	if addr == 0 {
		done()
		return
	}
	size, err := seccomp.ReadUint32(c.tid, lenAddr)
	if err != nil {
		c.fail(unix.EFAULT)
		return
	}
	if int32(size) < 0 {
		c.fail(unix.EINVAL)
		return
	}
	out := sa
	if uint32(len(out)) > size {
		out = out[:size]
	}
	if !c.valid() {
		return
	}
	if seccomp.WriteMemory(c.tid, addr, out) != nil ||
		seccomp.WriteMemory(c.tid, lenAddr, binary.LittleEndian.AppendUint32(nil, uint32(len(sa)))) != nil {
		c.fail(unix.EFAULT)
		return
	}
	done()
}
