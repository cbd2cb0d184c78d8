package supervisor

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// parseSockaddr decodes a sockaddr_in or sockaddr_in6 as the program passed
// it. Other families are not ours to redirect.
func parseSockaddr(b []byte) (netip.AddrPort, bool) {
	if len(b) < 2 {
		return netip.AddrPort{}, false
	}
	switch binary.LittleEndian.Uint16(b) {
	case unix.AF_INET:
		if len(b) < 8 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:])), true
	case unix.AF_INET6:
		if len(b) < 24 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), binary.BigEndian.Uint16(b[2:])), true
	}
	return netip.AddrPort{}, false
}

// encodeSockaddr lays out ap for a socket of family: an IPv4 destination on
// an IPv6 socket is reported as an IPv4-mapped address, as the kernel would.
func encodeSockaddr(family int, ap netip.AddrPort) []byte {
	if family == unix.AF_INET {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint16(b, unix.AF_INET)
		binary.BigEndian.PutUint16(b[2:], ap.Port())
		a4 := ap.Addr().Unmap().As4()
		copy(b[4:], a4[:])
		return b
	}
	b := make([]byte, 28)
	binary.LittleEndian.PutUint16(b, unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], ap.Port())
	a16 := ap.Addr().As16()
	copy(b[8:], a16[:])
	return b
}

func sockaddrOf(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func addrPortOf(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch v := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(v.Addr), uint16(v.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(v.Addr), uint16(v.Port)), true
	}
	return netip.AddrPort{}, false
}
