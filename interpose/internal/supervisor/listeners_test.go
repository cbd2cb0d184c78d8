package supervisor

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestListeningOnFollowsTheSocket(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	if ok, err := listeningOn(port); err != nil || !ok {
		t.Fatalf("listeningOn(%d) with a listener = %v, %v", port, ok, err)
	}
	l.Close()
	if ok, err := listeningOn(port); err != nil || ok {
		t.Fatalf("listeningOn(%d) after close = %v, %v", port, ok, err)
	}
}

// TestDestroyAnnouncesTheClosedListener: the kernel announces a closed
// listener's port to the destroy groups, which is what ends subscriptions.
func TestDestroyAnnouncesTheClosedListener(t *testing.T) {
	f, err := openDestroyWatch()
	if err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("joining sock_diag's destroy groups: %v", err)
		}
		t.Fatal(err)
	}
	defer f.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	rc, _ := f.SyscallConn()
	buf := make([]byte, 32<<10)
	for {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return !errors.Is(rerr, unix.EAGAIN)
		}); err != nil || rerr != nil {
			t.Fatal(err, rerr)
		}
		for _, p := range destroyedPorts(buf[:n]) {
			if p == port {
				return
			}
		}
	}
}

func TestDestroyedPortsParsesAndBounds(t *testing.T) {
	msg := func(port uint16) []byte {
		b := make([]byte, unix.NLMSG_HDRLEN+72)
		binary.NativeEndian.PutUint32(b, uint32(len(b)))
		binary.BigEndian.PutUint16(b[unix.NLMSG_HDRLEN+4:], port)
		return b
	}
	b := append(msg(8080), msg(9090)...)
	got := destroyedPorts(b)
	if len(got) != 2 || got[0] != 8080 || got[1] != 9090 {
		t.Errorf("ports %v, want [8080 9090]", got)
	}
	// Lengths that overrun the buffer or are too short stop the parse.
	bad := msg(1)
	binary.NativeEndian.PutUint32(bad, 1<<20)
	if got := destroyedPorts(bad); len(got) != 0 {
		t.Errorf("ports of a truncated message: %v", got)
	}
	binary.NativeEndian.PutUint32(bad, 3)
	if got := destroyedPorts(bad); len(got) != 0 {
		t.Errorf("ports of a short header: %v", got)
	}
}

func TestDestroyedPortsSkipsConnections(t *testing.T) {
	b := make([]byte, unix.NLMSG_HDRLEN+72)
	binary.NativeEndian.PutUint32(b, uint32(len(b)))
	binary.BigEndian.PutUint16(b[unix.NLMSG_HDRLEN+4:], 8080)
	binary.BigEndian.PutUint16(b[unix.NLMSG_HDRLEN+6:], 41000) // a peer: an accepted connection
	if got := destroyedPorts(b); len(got) != 0 {
		t.Errorf("a connection's port was announced as a listener's: %v", got)
	}
}
