package supervisor

import (
	"bytes"
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/seccomp"
)

// accept carries out accept and accept4 on the listeners the supervisor
// subscribed, so that the address the program gets is a delivered
// connection's origin: the kernel's accept would report the forwarder's
// loopback port, and the call cannot be changed after it continued. Other
// listeners' calls continue.
//
// The supervisor accepts on its duplicate of the listener (which shares
// the program's open file, O_NONBLOCK included), writes the address into
// the program's memory, and installs the new socket in the program's
// descriptor table, completing the call with its number (ADDFD with
// SECCOMP_ADDFD_FLAG_SEND).
func (s *Supervisor) accept(c *call) {
	if !s.incoming.anyListener() {
		c.cont()
		return
	}
	flags := 0
	if int(c.n.Data.Nr) == seccomp.SysAccept4 {
		flags = int(int32(c.arg(3)))
	}
	fd, ok := c.socketFD()
	if !ok {
		return
	}
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
	if err != nil || !s.incoming.isListener(cookie) || flags&^(unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC) != 0 {
		// Not ours, or flags the kernel is to refuse itself.
		unix.Close(fd)
		c.cont()
		return
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil && fl&unix.O_NONBLOCK != 0 {
		// Event-driven servers (Go, Node, asyncio) accept when the
		// listener is readable, or get EAGAIN: answered inline.
		s.acceptNow(c, fd, flags)
		unix.Close(fd)
		return
	}
	c.async(func(c *call) {
		defer unix.Close(fd)
		if s.waitAcceptable(c, fd) {
			s.acceptNow(c, fd, flags)
		}
	})
}

// acceptNow accepts one connection on fd and hands it to the caller.
func (s *Supervisor) acceptNow(c *call, fd, flags int) {
	nfd, sa, err := unix.Accept4(fd, flags&unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		c.fail(errnoOf(err, unix.ECONNABORTED))
		return
	}
	defer unix.Close(nfd)
	family, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	from, _ := addrPortOf(sa)
	shown := from
	if o, ok := s.origins.lookup(from); ok && fits(family, o.peer) {
		shown = o.peer
		s.stats.remote("accept")
	}
	s.writeSockaddr(c, c.arg(1), c.arg(2), encodeSockaddr(family, shown), func() {
		_, err := c.l.AddFDAndReturn(c.n.ID, nfd, flags&unix.SOCK_CLOEXEC != 0)
		if err != nil && !errors.Is(err, seccomp.ErrGone) {
			// The program's descriptor table is full (EMFILE): its
			// own accept would have failed the same way.
			c.fail(errnoOf(err, unix.EMFILE))
		}
	})
}

// erestartsys is the kernel's "restart or EINTR" result: returned while a
// signal is pending, the kernel restarts the call if the handler has
// SA_RESTART and fails it with EINTR otherwise, exactly as for a call a
// signal interrupts.
const erestartsys = unix.Errno(512)

// acceptPoll is how often a blocking accept looks for signals sent to its
// thread.
const acceptPoll = 50

// waitAcceptable waits until fd has a connection to accept. Meanwhile the
// caller sleeps in the kernel unable to take signals (the notification is
// received: WAIT_KILLABLE_RECV), so the wait also watches the thread's
// pending signals and returns the call to the kernel when one is due. It
// reports false when the call was answered (or is gone) instead.
func (s *Supervisor) waitAcceptable(c *call, fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(s.stop), Events: unix.POLLIN}}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		n, err := unix.Poll(fds, acceptPoll)
		switch {
		case err != nil && !errors.Is(err, unix.EINTR):
			c.cont()
			return false
		case fds[1].Revents != 0:
			// The supervisor stops: the kernel waits for the
			// connection instead, as it would without remocal.
			c.cont()
			return false
		case n > 0:
			return true
		case !c.valid():
			return false
		case signalDue(c.tid):
			c.fail(erestartsys)
			return false
		}
	}
}

// signalDue reports whether a signal the thread does not block waits for
// it. Process-wide pending signals count only for a single-threaded
// process: in others the kernel may wake another thread for them, and a
// restart result on a thread without a signal would reach the program.
func signalDue(tid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return false
	}
	var thread, shared, blocked uint64
	threads := 0
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch string(k) {
		case "Threads":
			threads, _ = strconv.Atoi(string(v))
		case "SigPnd":
			thread, _ = strconv.ParseUint(string(v), 16, 64)
		case "ShdPnd":
			shared, _ = strconv.ParseUint(string(v), 16, 64)
		case "SigBlk":
			blocked, _ = strconv.ParseUint(string(v), 16, 64)
		}
	}
	pending := thread
	if threads == 1 {
		pending |= shared
	}
	return pending&^blocked != 0
}
