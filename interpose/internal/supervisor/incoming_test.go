package supervisor

import (
	"context"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/seccomp"
	"github.com/remocal/remocal/protocol/wire"
)

// staleCall is a notification that is no longer valid by the time it is
// checked, made by this process: what a handler sees when the caller died
// and its thread ID now names someone else. The listener is /dev/null, on
// which every seccomp ioctl fails, so Valid reports false and answers go
// nowhere.
func staleCall(t *testing.T, s *Supervisor, nr int, args ...uint64) *call {
	t.Helper()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	l := seccomp.NewListener(int(null.Fd()))
	t.Cleanup(func() { l.Close(); null.Close() })
	c := &call{s: s, l: l, tid: os.Getpid()}
	c.n.Data.Nr = int32(nr)
	copy(c.n.Data.Args[:], args)
	return c
}

// listen must not act on a socket it took from a thread ID that may have
// been recycled: the notification must still be valid after the reads.
func TestListenChecksValidityBeforeListening(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &Supervisor{cfg: Config{Incoming: IncomingOptions{Mode: wire.ModeMirror}}, ctx: ctx, cancel: cancel}
	s.incoming = newIncoming(s)
	s.incoming.listen(staleCall(t, s, seccomp.SysListen, uint64(fd), 16))
	s.wg.Wait()
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 0 {
		t.Errorf("the stranger's socket listens (SO_ACCEPTCONN %d, %v)", v, err)
	}
	if len(s.incoming.wanted) != 0 {
		t.Errorf("ports wanted from the target: %v", s.incoming.wanted)
	}
}
