package supervisor

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzParseSockaddr: the program's connect(2) argument is any bytes it
// likes. An address is accepted only from a long enough sockaddr_in or
// sockaddr_in6, and encoding it again for its family gives back the bytes
// that were read (family, port, address).
func FuzzParseSockaddr(f *testing.F) {
	f.Add(encodeSockaddr(unix.AF_INET, netip.MustParseAddrPort("10.0.0.1:80")))
	f.Add(encodeSockaddr(unix.AF_INET6, netip.MustParseAddrPort("[2001:db8::1]:443")))
	f.Add(encodeSockaddr(unix.AF_INET6, netip.MustParseAddrPort("[::ffff:127.0.0.1]:53")))
	f.Add([]byte{1, 0, '/', 't', 'm', 'p'}) // AF_UNIX
	f.Add([]byte{2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ap, ok := parseSockaddr(b)
		if !ok {
			return
		}
		family := int(binary.LittleEndian.Uint16(b))
		switch {
		case family == unix.AF_INET && len(b) >= 8 && ap.Addr().Is4():
			if enc := encodeSockaddr(family, ap); !bytes.Equal(enc[:8], b[:8]) {
				t.Fatalf("parsed %v from %x, which encodes as %x", ap, b[:8], enc[:8])
			}
		case family == unix.AF_INET6 && len(b) >= 24 && ap.Addr().Is6():
			enc := encodeSockaddr(family, ap)
			if !bytes.Equal(enc[:4], b[:4]) || !bytes.Equal(enc[8:24], b[8:24]) {
				t.Fatalf("parsed %v from %x, which encodes as %x", ap, b[:24], enc[:24])
			}
		default:
			t.Fatalf("accepted %v from %x (family %d, %d bytes)", ap, b, family, len(b))
		}
	})
}

// FuzzFlowKey: whatever address a program's socket has, the key the proxy
// files it under is the key of the address the kernel connects it from, and
// no other address with the same port shares it.
func FuzzFlowKey(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, uint16(40000), false)
	f.Add(make([]byte, 16), uint16(1), true)
	f.Fuzz(func(t *testing.T, ip []byte, port uint16, v6loop bool) {
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		loop := netip.MustParseAddr("127.0.0.1")
		if v6loop && addr.Is6() {
			loop = netip.IPv6Loopback()
		}
		k := keyOf(netip.AddrPortFrom(addr, port), loop)
		from := addr
		if addr.IsUnspecified() {
			from = loop
		}
		if k != peerKey(netip.AddrPortFrom(from, port)) {
			t.Fatalf("socket %v: key %v is not the key of its source %v", addr, k, from)
		}
		other := netip.AddrFrom4([4]byte{127, 0, 0, 2})
		if from.Unmap() != other && k == peerKey(netip.AddrPortFrom(other, port)) {
			t.Fatalf("socket %v shares its key with %v", addr, other)
		}
	})
}
