package supervisor

import (
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestFlowKeys(t *testing.T) {
	v4 := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		name  string
		local netip.AddrPort
		loop  netip.Addr
		peer  netip.AddrPort // how the proxy sees the socket arrive
	}{
		{"bound by the proxy", netip.MustParseAddrPort("127.0.0.1:40000"), v4, netip.MustParseAddrPort("127.0.0.1:40000")},
		{"bound by the program to another loopback address", netip.MustParseAddrPort("127.0.0.5:40000"), v4, netip.MustParseAddrPort("127.0.0.5:40000")},
		{"bound to the unspecified address", netip.MustParseAddrPort("0.0.0.0:40000"), v4, netip.MustParseAddrPort("127.0.0.1:40000")},
		{"IPv6", netip.MustParseAddrPort("[::1]:40000"), netip.IPv6Loopback(), netip.MustParseAddrPort("[::1]:40000")},
		{"IPv6 unspecified", netip.MustParseAddrPort("[::]:40000"), netip.IPv6Loopback(), netip.MustParseAddrPort("[::1]:40000")},
		// Without an IPv6 loopback, IPv6 sockets reach the IPv4 listener.
		{"IPv4-mapped", netip.MustParseAddrPort("[::ffff:127.0.0.1]:40000"), netip.MustParseAddr("::ffff:127.0.0.1"), netip.MustParseAddrPort("127.0.0.1:40000")},
		{"IPv6 unspecified, IPv4-mapped loop", netip.MustParseAddrPort("[::]:40000"), netip.MustParseAddr("::ffff:127.0.0.1"), netip.MustParseAddrPort("[::ffff:127.0.0.1]:40000")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if k, pk := keyOf(tc.local, tc.loop), peerKey(tc.peer); k != pk {
				t.Errorf("keyOf(%v, %v) = %v, but the arriving socket's key is %v", tc.local, tc.loop, k, pk)
			}
		})
	}
	// Same port, other address or family: other flows.
	for _, other := range []string{"127.0.0.2:40000", "[::1]:40000", "127.0.0.1:40001"} {
		if keyOf(netip.MustParseAddrPort("127.0.0.1:40000"), v4) == peerKey(netip.MustParseAddrPort(other)) {
			t.Errorf("a socket from %s matches the program's 127.0.0.1:40000", other)
		}
	}
}

// Another local process binds a second loopback address with the port of
// a program's socket that waits for its connection through the target, and
// connects to the proxy first. It must not get the program's connection;
// the program still does.
func TestProxyFlowNotTakenFromAnotherAddress(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := s.proxy

	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	program := os.NewFile(uintptr(fd), "program")
	defer program.Close()
	key, proxyAddr, err := p.bindLoopback(fd, p.tcp)
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	port := sa.(*unix.SockaddrInet4).Port
	target, agentSide := net.Pipe() // the connection the agent dialled in the target
	defer target.Close()
	p.mu.Lock()
	p.tcpQ[key] = pendingTCP{conn: agentSide}
	p.mu.Unlock()
	const secret = "reply from the target's database"
	go target.Write([]byte(secret))

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: port}}
	attacker, err := d.Dial("tcp", proxyAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	attacker.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound on failure, not synchronisation
	if got, err := io.ReadAll(attacker); len(got) > 0 || err != nil {
		t.Errorf("a connection from 127.0.0.2:%d with the program's port read %q, %v; want it closed without data", port, got, err)
	}

	if err := unix.Connect(fd, sockaddrOf(proxyAddr)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(secret))
	if _, err := io.ReadFull(program, buf); err != nil || string(buf) != secret {
		t.Errorf("the program read %q, %v; want %q", buf, err, secret)
	}
}
