package redirect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h),
// which golang.org/x/sys/unix does not define.
const ip6tSOOriginalDst = 80

// OriginalDst returns the destination a redirected connection was originally
// addressed to (getsockopt SO_ORIGINAL_DST for IPv4, IP6T_SO_ORIGINAL_DST for
// IPv6), via conn.SyscallConn(). The agent needs it because after a redirect
// the socket's local address is the agent's port, not the application port
// the client asked for.
//
// The kernel answers from conntrack, so it only works for connections that
// conntrack tracked. For one that was not redirected the answer depends on
// whether anything enabled conntrack in the namespace (nf_tables does so only
// while a rule needs it, such as a redirect rule): the connection's own local
// address if so, an error wrapping ENOENT if not.
//
// An IPv4 connection accepted on a dual-stack ("tcp", "[::]:port") listener
// has an IPv4-mapped local address; it is looked up, and reported, as IPv4,
// since that is what conntrack tracked.
func OriginalDst(conn *net.TCPConn) (netip.AddrPort, error) {
	if conn == nil {
		return netip.AddrPort{}, errors.New("redirect: original destination: nil connection")
	}
	local, ok := conn.LocalAddr().(*net.TCPAddr)
	if !ok || local == nil {
		return netip.AddrPort{}, fmt.Errorf("redirect: original destination: unexpected local address %v", conn.LocalAddr())
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("redirect: original destination: %w", err)
	}
	var (
		dst    netip.AddrPort
		optErr error
	)
	ctlErr := rc.Control(func(fd uintptr) {
		if local.IP.To4() != nil {
			dst, optErr = originalDst4(fd)
		} else {
			dst, optErr = originalDst6(fd)
		}
	})
	if err := errors.Join(ctlErr, optErr); err != nil {
		return netip.AddrPort{}, fmt.Errorf("redirect: original destination of connection from %v to %v: %w",
			conn.RemoteAddr(), local, err)
	}
	return dst, nil
}

func originalDst4(fd uintptr) (netip.AddrPort, error) {
	var sa unix.RawSockaddrInet4
	if err := getsockopt(fd, unix.SOL_IP, unix.SO_ORIGINAL_DST, unsafe.Pointer(&sa), unsafe.Sizeof(sa)); err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", err)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), netPort(&sa.Port)), nil
}

func originalDst6(fd uintptr) (netip.AddrPort, error) {
	var sa unix.RawSockaddrInet6
	if err := getsockopt(fd, unix.SOL_IPV6, ip6tSOOriginalDst, unsafe.Pointer(&sa), unsafe.Sizeof(sa)); err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockopt IP6T_SO_ORIGINAL_DST: %w", err)
	}
	addr := netip.AddrFrom16(sa.Addr)
	if sa.Scope_id != 0 {
		// The interface index belongs to the target's namespace, where a
		// name lookup from here would be wrong; keep it numeric.
		addr = addr.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
	}
	return netip.AddrPortFrom(addr, netPort(&sa.Port)), nil
}

// netPort reads a sockaddr port, which is stored in network byte order
// whatever the host's.
func netPort(p *uint16) uint16 {
	return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:])
}

// getsockopt is the raw system call: the result is a struct sockaddr, for
// which golang.org/x/sys/unix has no typed getter.
func getsockopt(fd uintptr, level, name int, val unsafe.Pointer, size uintptr) error {
	l := uint32(size)
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, uintptr(level), uintptr(name),
		uintptr(val), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}
