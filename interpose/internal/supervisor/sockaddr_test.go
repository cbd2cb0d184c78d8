package supervisor

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// sin builds a sockaddr_in the way a program lays it out: family in host
// (little-endian) order, port and address in network order.
func sin(port uint16, a, b, c, d byte) []byte {
	return []byte{unix.AF_INET, 0, byte(port >> 8), byte(port), a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0}
}

func sin6(port uint16, addr string) []byte {
	b := make([]byte, 28)
	b[0], b[1] = unix.AF_INET6, 0
	b[2], b[3] = byte(port>>8), byte(port)
	a := netip.MustParseAddr(addr).As16()
	copy(b[8:], a[:])
	return b
}

func TestParseSockaddr(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want netip.AddrPort
		ok   bool
	}{
		{"nil", nil, netip.AddrPort{}, false},
		{"one byte", []byte{unix.AF_INET}, netip.AddrPort{}, false},
		{"inet", sin(8080, 10, 0, 0, 7), netip.MustParseAddrPort("10.0.0.7:8080"), true},
		{"inet port in network order", sin(0x0102, 127, 0, 0, 1), netip.MustParseAddrPort("127.0.0.1:258"), true},
		{"inet without sin_zero", sin(53, 10, 96, 0, 10)[:8], netip.MustParseAddrPort("10.96.0.10:53"), true},
		{"inet cut in the address", sin(53, 10, 96, 0, 10)[:7], netip.AddrPort{}, false},
		{"inet6", sin6(443, "fd00::1"), netip.MustParseAddrPort("[fd00::1]:443"), true},
		{"inet6 without scope id", sin6(443, "fd00::1")[:24], netip.MustParseAddrPort("[fd00::1]:443"), true},
		{"inet6 cut in the address", sin6(443, "fd00::1")[:23], netip.AddrPort{}, false},
		// Mapped addresses are kept as given; connect unmaps them.
		{"inet6 mapped", sin6(80, "::ffff:10.0.0.1"), netip.MustParseAddrPort("[::ffff:10.0.0.1]:80"), true},
		{"unix", append([]byte{unix.AF_UNIX, 0}, "/run/x.sock"...), netip.AddrPort{}, false},
		{"netlink", make([]byte, 12), netip.AddrPort{}, false}, // AF_UNSPEC
		{"family in network order", []byte{0, unix.AF_INET, 0, 80, 1, 2, 3, 4}, netip.AddrPort{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseSockaddr(tc.in)
			if ok != tc.ok || got != tc.want {
				t.Errorf("parseSockaddr(%v) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestEncodeSockaddr(t *testing.T) {
	for _, tc := range []struct {
		name   string
		family int
		in     string
		want   []byte
	}{
		{"inet", unix.AF_INET, "10.0.0.7:8080", sin(8080, 10, 0, 0, 7)},
		{"inet given a mapped address", unix.AF_INET, "[::ffff:10.0.0.7]:8080", sin(8080, 10, 0, 0, 7)},
		{"inet6", unix.AF_INET6, "[fd00::1]:443", sin6(443, "fd00::1")},
		// The kernel reports an IPv4 peer of an IPv6 socket as mapped.
		{"inet on an inet6 socket", unix.AF_INET6, "10.96.0.10:53", sin6(53, "::ffff:10.96.0.10")},
		{"port zero", unix.AF_INET, "1.2.3.4:0", sin(0, 1, 2, 3, 4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := encodeSockaddr(tc.family, netip.MustParseAddrPort(tc.in))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("encodeSockaddr(%d, %s) (-want +got):\n%s", tc.family, tc.in, diff)
			}
			// What getpeername hands out reads back as the destination.
			back, ok := parseSockaddr(got)
			want := netip.MustParseAddrPort(tc.in)
			if tc.family == unix.AF_INET6 && want.Addr().Is4() {
				want = netip.AddrPortFrom(netip.AddrFrom16(want.Addr().As16()), want.Port())
			}
			if tc.family == unix.AF_INET {
				want = netip.AddrPortFrom(want.Addr().Unmap(), want.Port())
			}
			if !ok || back != want {
				t.Errorf("parse(encode) = %v, %v; want %v", back, ok, want)
			}
		})
	}
}

func TestSockaddrOfAndBack(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want unix.Sockaddr
	}{
		{"127.0.0.1:9", &unix.SockaddrInet4{Port: 9, Addr: [4]byte{127, 0, 0, 1}}},
		{"[::1]:65535", &unix.SockaddrInet6{Port: 65535, Addr: netip.IPv6Loopback().As16()}},
		{"[::ffff:127.0.0.1]:80", &unix.SockaddrInet6{Port: 80, Addr: netip.MustParseAddr("::ffff:127.0.0.1").As16()}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ap := netip.MustParseAddrPort(tc.in)
			sa := sockaddrOf(ap)
			if diff := cmp.Diff(tc.want, sa, cmp.AllowUnexported(unix.SockaddrInet4{}, unix.SockaddrInet6{})); diff != "" {
				t.Errorf("sockaddrOf(%s) (-want +got):\n%s", tc.in, diff)
			}
			back, ok := addrPortOf(sa)
			if !ok || back != ap {
				t.Errorf("addrPortOf(sockaddrOf(%s)) = %v, %v", tc.in, back, ok)
			}
		})
	}
	if ap, ok := addrPortOf(&unix.SockaddrUnix{Name: "/run/x.sock"}); ok {
		t.Errorf("addrPortOf(unix socket) = %v, true; want not an IP address", ap)
	}
	if _, ok := addrPortOf(nil); ok {
		t.Error("addrPortOf(nil) = true")
	}
}
