package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/test/poll"
)

// The real kernel's sockets and this process's own descriptor table stand
// in for a program's: the e2e tests (test/e2e/direct_test.go) do the same
// through remocal exec.

func tcpSocket(t *testing.T, flags int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|flags, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestCopyOptionsCarriesWhatTheProgramSet(t *testing.T) {
	from, to := tcpSocket(t, 0), tcpSocket(t, 0)
	for _, o := range []struct{ level, opt, v int }{
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 33},
		{unix.SOL_SOCKET, unix.SO_SNDBUF, 50000},
		{unix.IPPROTO_IP, unix.IP_TOS, 0x10},
	} {
		if err := unix.SetsockoptInt(from, o.level, o.opt, o.v); err != nil {
			t.Fatal(err)
		}
	}
	lg := &unix.Linger{Onoff: 1, Linger: 7}
	unix.SetsockoptLinger(from, unix.SOL_SOCKET, unix.SO_LINGER, lg)
	tv := &unix.Timeval{Sec: 3}
	unix.SetsockoptTimeval(from, unix.SOL_SOCKET, unix.SO_SNDTIMEO, tv)

	if why := copyOptions(from, to, unix.AF_INET, readOptions(to, unix.AF_INET)); why != "" {
		t.Fatalf("copyOptions: %s", why)
	}
	for _, o := range intOptions {
		pv, err1 := unix.GetsockoptInt(from, o.level, o.opt)
		nv, err2 := unix.GetsockoptInt(to, o.level, o.opt)
		if err1 == nil && (err2 != nil || pv != nv) {
			t.Errorf("%s: program's %d, new socket's %d (%v)", o.name, pv, nv, err2)
		}
	}
	if got, _ := unix.GetsockoptLinger(to, unix.SOL_SOCKET, unix.SO_LINGER); got == nil || *got != *lg {
		t.Errorf("SO_LINGER %+v, want %+v", got, lg)
	}
	if got, _ := unix.GetsockoptTimeval(to, unix.SOL_SOCKET, unix.SO_SNDTIMEO); got == nil || *got != *tv {
		t.Errorf("SO_SNDTIMEO %+v, want %+v", got, tv)
	}
}

func TestCopyOptionsCarriesCongestionControl(t *testing.T) {
	from, to := tcpSocket(t, 0), tcpSocket(t, 0)
	// reno is built into every kernel with TCP.
	if err := unix.SetsockoptString(from, unix.IPPROTO_TCP, unix.TCP_CONGESTION, "reno"); err != nil {
		t.Fatal(err)
	}
	if why := copyOptions(from, to, unix.AF_INET, readOptions(to, unix.AF_INET)); why != "" {
		t.Fatalf("copyOptions: %s", why)
	}
	if got, _ := unix.GetsockoptString(to, unix.IPPROTO_TCP, unix.TCP_CONGESTION); got != "reno" {
		t.Errorf("TCP_CONGESTION %q, want reno", got)
	}
}

func TestDirectFactsRefuseWhatCannotBeReplaced(t *testing.T) {
	pid := os.Getpid()
	facts := func(fd int) (directSocket, string) { return directFacts(pid, fd, fd) }

	plain := tcpSocket(t, unix.SOCK_NONBLOCK)
	if f, why := facts(plain); why != "" || !f.nonblocking || f.cloexec || f.family != unix.AF_INET {
		t.Errorf("a plain non-blocking socket: %+v %q", f, why)
	}
	if f, why := facts(tcpSocket(t, unix.SOCK_CLOEXEC)); why != "" || f.nonblocking || !f.cloexec {
		t.Errorf("a blocking close-on-exec socket: %+v %q", f, why)
	}

	bound := tcpSocket(t, 0)
	unix.Bind(bound, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	polled := tcpSocket(t, 0)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, polled, &unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(polled)})
	duped := tcpSocket(t, 0)
	dup, _ := unix.Dup(duped)
	defer unix.Close(dup)
	async := tcpSocket(t, 0)
	fl, _ := unix.FcntlInt(uintptr(async), unix.F_GETFL, 0)
	unix.FcntlInt(uintptr(async), unix.F_SETFL, fl|unix.O_ASYNC)
	udp, _ := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	defer unix.Close(udp)

	for _, tc := range []struct {
		name string
		fd   int
		want string
	}{
		{"bound", bound, "bound before connect"},
		{"epoll", polled, "epoll"},
		{"dup", duped, "second descriptor"},
		{"O_ASYNC", async, "O_ASYNC"},
		{"UDP", udp, "not TCP"},
	} {
		if _, why := facts(tc.fd); !strings.Contains(why, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, why, tc.want)
		}
	}
	// After epoll forgets it, the socket can be replaced.
	unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, polled, nil)
	if _, why := facts(polled); why != "" {
		t.Errorf("a socket no longer in epoll: %q", why)
	}
}

// inThisNamespace is a TargetNetwork seam for unit tests: it makes the
// sockets here (test/e2e/direct_test.go makes them in a target).
type inThisNamespace struct{ calls atomic.Int32 }

func (n *inThisNamespace) Do(fn func() error) error { n.calls.Add(1); return fn() }

func TestTargetSocketsAreMadeAheadAndClosed(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{ctx: ctx, cancel: cancel, log: slog.New(slog.DiscardHandler)}
	tn := &inThisNamespace{}
	ts := newTargetSockets(s, tn)
	fd, def, err := ts.take(unix.AF_INET)
	if err != nil || def == nil {
		t.Fatalf("take: %v (defaults %v)", err, def)
	}
	unix.Close(fd)
	pool := ts.families[unix.AF_INET]
	if err := poll.Until(ctx, 10*time.Second, func() error {
		if len(pool.ready) < socketsAhead {
			return fmt.Errorf("%d sockets ready, want %d", len(pool.ready), socketsAhead)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	made := tn.calls.Load()
	fd, _, err = ts.take(unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	if typ, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); typ != unix.SOCK_STREAM {
		t.Errorf("a socket made ahead has type %d", typ)
	}
	unix.Close(fd)
	if tn.calls.Load() > made+1 { // the one taken is made again, at most
		t.Errorf("take made a socket though %d were ready", socketsAhead)
	}
	cancel()
	s.wg.Wait()
	var ready []int
	for len(pool.ready) > 0 {
		fd := <-pool.ready
		ready = append(ready, fd)
		pool.ready <- fd
		if len(ready) == socketsAhead {
			break
		}
	}
	ts.close()
	for _, fd := range ready {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			t.Errorf("socket %d made ahead is still open after close", fd)
		}
	}
}
