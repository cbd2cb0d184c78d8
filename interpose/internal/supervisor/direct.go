package supervisor

import (
	"errors"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/seccomp"
)

// Outgoing TCP for local targets, without a relay: when the supervisor
// can make sockets in the target's network namespace (Config.TargetNetwork:
// the target is a process on this machine and remocal may enter its
// namespace), it makes one there, gives it the options the program set on
// its own socket, connects it to the destination, and installs it in the
// program in place of the program's socket, under the same descriptor
// number (SECCOMP_ADDFD_FLAG_SETFD, as dup2 would). The program then talks
// to its destination through the kernel alone: no proxy, no yamux, no
// agent. A blocking connect(2) returns once the handshake is done, with 0
// or the target's error. A non-blocking one is answered as soon as the
// new socket has started its handshake, with the kernel's answer to that
// (EINPROGRESS): the program waits for it in poll or epoll and reads the
// outcome from SO_ERROR, as it would on its own socket, and no thread of
// remocal's waits in between.
//
// Addresses need no help: getpeername shows the destination and
// getsockname the socket's address in the target, because that is what
// the socket is.
//
// What cannot be reproduced falls back to the relay (see directFacts):
// a socket bound before connect (its address belongs to this machine's
// namespace), one registered in an epoll instance or held under a second
// descriptor (those would keep the program's old socket), O_ASYNC, an
// option the new socket refuses; DNS queries the session splits by name
// (dns.go reads them) and an agent connection that is down (the relayed
// path fails as documented then).

// TargetNetwork runs work on a thread inside the target's network
// namespace (netns.Thread).
type TargetNetwork interface {
	Do(fn func() error) error
}

// directSocket is what the program's socket says about the one to make.
type directSocket struct {
	family      int
	nonblocking bool
	cloexec     bool
}

// connectDirect connects the program's socket (fd, its copy) to dest
// from the target's namespace. It reports false, with nothing answered,
// when the connection must be relayed instead.
func (p *proxy) connectDirect(c *call, fd int, dest netip.AddrPort) bool {
	if p.s.sockets == nil || p.s.splitsDNS(dest) {
		return false
	}
	select {
	case <-p.s.agent().Done():
		return false
	default:
	}
	progFD := int(c.arg(0))
	facts, why := directFacts(c.tid, progFD, fd)
	switch {
	case why == whyConnected:
		c.cont() // connect again: the kernel says EALREADY, 0 or EISCONN
		return true
	case why != "":
		p.s.log.Debug("outgoing connection relayed", "dest", dest, "reason", why)
		return false
	}
	nfd, defaults, err := p.s.sockets.take(facts.family) // directpool.go
	if err != nil {
		p.s.log.Debug("outgoing connection relayed", "dest", dest, "reason", "no socket in the target", "err", err)
		return false
	}
	defer unix.Close(nfd) // the program holds its own reference once installed
	if why := copyOptions(fd, nfd, facts.family, defaults); why != "" {
		p.s.log.Debug("outgoing connection relayed", "dest", dest, "reason", why)
		return false
	}
	to := dest
	if facts.family == unix.AF_INET6 {
		to = netip.AddrPortFrom(netip.AddrFrom16(dest.Addr().As16()), dest.Port()) // IPv4-mapped
	}
	inProgress, answered, ok := p.startConnect(c, nfd, to, dest, facts.nonblocking)
	if answered || !ok {
		return answered
	}
	if !c.valid() {
		return true
	}
	if !stillThere(c.tid, progFD, fd) {
		// Another thread of the program closed the descriptor and the
		// number now names something else: replacing it would close that.
		p.s.log.Debug("outgoing connection relayed", "dest", dest, "reason", "the descriptor changed while connecting")
		return false
	}
	if err := c.l.ReplaceFD(c.n.ID, nfd, progFD, facts.cloexec); err != nil {
		if errors.Is(err, seccomp.ErrGone) {
			return true
		}
		p.s.log.Debug("outgoing connection relayed", "dest", dest, "reason", "installing the socket failed", "err", err)
		return false
	}
	p.s.log.Debug("outgoing connection handed over connected in the target", "dest", dest)
	p.s.stats.remote("connect")
	p.s.stats.remote("connect-direct")
	if inProgress {
		c.fail(unix.EINPROGRESS)
	} else {
		c.ret(0)
	}
	return true
}

// startConnect connects the new socket nfd. A non-blocking program's
// connect is answered once the handshake started (inProgress): the
// program waits for it itself, as with its own socket, and a refusal
// reaches it through SO_ERROR. A blocking one's waits for the handshake.
// answered: the call was answered (the target refused) or is gone; !ok:
// the socket cannot be used, relay instead.
func (p *proxy) startConnect(c *call, nfd int, to, dest netip.AddrPort, nonblocking bool) (inProgress, answered, ok bool) {
	if nonblocking {
		err := unix.Connect(nfd, sockaddrOf(to))
		inProgress = errors.Is(err, unix.EINPROGRESS)
		if err != nil && !inProgress {
			p.s.log.Debug("outgoing connection refused in the target", "dest", dest, "err", err)
			c.fail(errnoOf(err, unix.ECONNREFUSED))
			return false, true, true
		}
		return inProgress, false, true
	}
	if err := connectWait(c, nfd, to); err != nil {
		if !errors.Is(err, errCallerGone) {
			p.s.log.Debug("outgoing connection refused in the target", "dest", dest, "err", err)
			c.fail(errnoOf(err, unix.ECONNREFUSED))
		}
		return false, true, true
	}
	return false, false, setNonblock(nfd, false) == nil
}

// connectWait connects a non-blocking socket and waits for the handshake
// as long as the agent would (outgoingDialTimeout), giving up early when
// the caller's call ended (a signal interrupted it, the thread died).
func connectWait(c *call, fd int, to netip.AddrPort) error {
	err := unix.Connect(fd, sockaddrOf(to))
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINPROGRESS) {
		return err
	}
	return waitConnected(c, fd, 500*time.Millisecond, outgoingDialTimeout)
}

// stillThere reports whether the program's descriptor progFD still names
// the socket fd is a copy of.
func stillThere(tid, progFD, fd int) bool {
	link, err := os.Readlink("/proc/" + strconv.Itoa(tid) + "/fd/" + strconv.Itoa(progFD))
	return err == nil && link == "socket:["+strconv.FormatUint(inode(fd), 10)+"]"
}

func setNonblock(fd int, on bool) error {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if on {
		flags |= unix.O_NONBLOCK
	} else {
		flags &^= unix.O_NONBLOCK
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags)
	return err
}
