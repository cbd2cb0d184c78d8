package supervisor

import (
	"encoding/binary"
	"errors"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/seccomp"
)

// The receive side of unconnected sockets (see udp.go): on a socket with
// flows through the target, the supervisor receives the datagram itself and
// reports a phantom's destination as its source. Every other socket's
// recvfrom and recvmsg continue untouched, decided without a look at the
// socket while no socket has flows.

// received is one datagram taken from a program's socket.
type received struct {
	data   []byte
	n      int // the call's result: len(data), or more with MSG_TRUNC
	oob    []byte
	rflags int
	from   []byte // sockaddr as the program should see it; nil if none
}

// trackedSocket takes the caller's socket if it has flows; otherwise it
// lets the call continue and returns -1.
func (d *datagrams) trackedSocket(c *call) (int, *dsock) {
	if d.tracked.Load() == 0 {
		c.cont()
		return -1, nil
	}
	fd, ok := c.socketFD()
	if !ok {
		return -1, nil
	}
	ino := inode(fd)
	d.mu.Lock()
	ds := d.socks[ino]
	d.mu.Unlock()
	if ds == nil {
		unix.Close(fd)
		c.cont()
		return -1, nil
	}
	return fd, ds
}

// recvfrom handles recvfrom(fd, buf, len, flags, addr, addrlen) with an
// address.
func (d *datagrams) recvfrom(c *call) {
	fd, ds := d.trackedSocket(c)
	if ds == nil {
		return
	}
	size := int(min(c.arg(2), maxDatagram))
	d.receive(c, fd, ds, size, 0, func(r received) error {
		if err := seccomp.WriteMemory(c.tid, c.arg(1), r.data); err != nil {
			return err
		}
		return writeName(c.tid, c.arg(4), c.arg(5), r.from)
	})
}

// recvmsg handles recvmsg(fd, msg, flags).
func (d *datagrams) recvmsg(c *call) {
	fd, ds := d.trackedSocket(c)
	if ds == nil {
		return
	}
	raw := make([]byte, msghdrSize)
	if err := seccomp.ReadMemory(c.tid, c.arg(1), raw); err != nil {
		unix.Close(fd)
		c.fail(unix.EFAULT)
		return
	}
	h := parseMsghdr(raw)
	iovs, err := readIovecs(c.tid, h.iov, h.iovlen)
	if err != nil {
		unix.Close(fd)
		c.fail(errnoOf(err, unix.EFAULT))
		return
	}
	msg, oobSize := c.arg(1), int(min(h.controllen, maxControl))
	if h.control == 0 {
		oobSize = 0
	}
	d.receive(c, fd, ds, capacity(iovs), oobSize, func(r received) error {
		if err := scatter(c.tid, iovs, r.data); err != nil {
			return err
		}
		if h.name != 0 {
			if err := writeName(c.tid, h.name, msg+msgNamelenOff, r.from); err != nil {
				return err
			}
		}
		if err := seccomp.WriteMemory(c.tid, h.control, r.oob); err != nil {
			return err
		}
		le := binary.LittleEndian
		if err := seccomp.WriteMemory(c.tid, msg+msgControllenOff, le.AppendUint64(nil, uint64(len(r.oob)))); err != nil {
			return err
		}
		return seccomp.WriteMemory(c.tid, msg+msgFlagsOff, le.AppendUint32(nil, uint32(r.rflags)))
	})
}

// writeName writes a source address as recvfrom does: truncated to the
// caller's buffer, with the full length in *lenAt.
func writeName(tid int, addr, lenAt uint64, sa []byte) error {
	if addr == 0 || lenAt == 0 {
		return nil
	}
	size, err := seccomp.ReadUint32(tid, lenAt)
	if err != nil {
		return err
	}
	if err := seccomp.WriteMemory(tid, addr, sa[:min(int(size), len(sa))]); err != nil {
		return err
	}
	return seccomp.WriteMemory(tid, lenAt, binary.LittleEndian.AppendUint32(nil, uint32(len(sa))))
}

// receive takes one datagram from the program's socket (it owns fd) and
// answers the call with write's outcome. A call that would block waits on
// a goroutine, so the notification loop goes on.
func (d *datagrams) receive(c *call, fd int, ds *dsock, size, oobSize int, write func(received) error) {
	flags := int(c.arg(3))
	if c.n.Data.Nr == seccomp.SysRecvmsg {
		flags = int(c.arg(2))
	}
	r, err := d.recvOnce(fd, ds, size, oobSize, flags)
	if errors.Is(err, unix.EAGAIN) && blocks(fd, flags) {
		c.async(func(c *call) {
			defer unix.Close(fd)
			r, err := d.recvWait(c, fd, ds, size, oobSize, flags)
			d.answerRecv(c, r, err, write)
		})
		return
	}
	unix.Close(fd)
	d.answerRecv(c, r, err, write)
}

func (d *datagrams) answerRecv(c *call, r received, err error, write func(received) error) {
	switch {
	case errors.Is(err, errCallerGone):
		return
	case errors.Is(err, errSessionEnding):
		// The call must not be left waiting: once the session is
		// gone nothing translates sources, so the kernel receives.
		c.cont()
		return
	case err != nil:
		c.fail(errnoOf(err, unix.EIO))
		return
	}
	if !c.valid() {
		return
	}
	if err := write(r); err != nil {
		c.fail(unix.EFAULT)
		return
	}
	c.ret(int64(r.n))
}

// blocks reports whether a receive would wait for a datagram.
func blocks(fd, flags int) bool {
	if flags&unix.MSG_DONTWAIT != 0 {
		return false
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	return err == nil && fl&unix.O_NONBLOCK == 0
}

var (
	errCallerGone    = errors.New("the receiving thread is gone")
	errSessionEnding = errors.New("the supervisor is closing")
)

// recvWait waits for a datagram as a blocking receive would, up to the
// socket's SO_RCVTIMEO. Like a blocking accept (waitAcceptable) it watches
// the thread's pending signals, since the caller cannot take them while
// its notification is received, and hands a due one back to the kernel.
func (d *datagrams) recvWait(c *call, fd int, ds *dsock, size, oobSize, flags int) (received, error) {
	var deadline time.Time
	if tv, err := unix.GetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO); err == nil && (tv.Sec != 0 || tv.Usec != 0) {
		deadline = time.Now().Add(time.Duration(tv.Nano()))
	}
	// The supervisor's stop eventfd stays readable once Close wrote it,
	// so a closing session wakes the wait at once.
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(d.s.stop), Events: unix.POLLIN}}
	for {
		wait := time.Duration(acceptPoll) * time.Millisecond
		if !deadline.IsZero() {
			if wait = min(wait, time.Until(deadline)); wait <= 0 {
				return received{}, unix.EAGAIN
			}
		}
		pfd[0].Revents, pfd[1].Revents = 0, 0
		n, err := unix.Poll(pfd, int(wait.Milliseconds())+1)
		switch {
		case err != nil && !errors.Is(err, unix.EINTR):
			return received{}, err
		case pfd[1].Revents != 0:
			return received{}, errSessionEnding
		case n > 0:
			r, err := d.recvOnce(fd, ds, size, oobSize, flags)
			if !errors.Is(err, unix.EAGAIN) {
				return r, err
			}
		case !c.valid():
			return received{}, errCallerGone
		case signalDue(c.tid):
			return received{}, erestartsys // restarted or EINTR, as the handler says
		}
	}
}

// recvOnce receives without waiting and translates the source.
func (d *datagrams) recvOnce(fd int, ds *dsock, size, oobSize, flags int) (received, error) {
	buf := make([]byte, size)
	var oob []byte
	if oobSize > 0 {
		oob = make([]byte, oobSize)
	}
	n, oobn, rflags, from, err := unix.Recvmsg(fd, buf, oob, flags|unix.MSG_DONTWAIT)
	if err != nil {
		return received{}, err
	}
	r := received{data: buf[:min(n, size)], n: n, oob: oob[:oobn], rflags: rflags}
	if ap, ok := addrPortOf(from); ok {
		r.from = encodeSockaddr(ds.family, d.source(ap))
	}
	return r, nil
}
