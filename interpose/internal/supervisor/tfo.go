package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/protocol/daemon"
)

// TCP Fast Open and sockets prepared before connecting.
//
// sendto(MSG_FASTOPEN) connects and sends in one call. It is carried out as
// the kernel does without a Fast Open cookie, which is always the case for
// a destination never reached before: a blocking socket connects, then
// sends; a non-blocking one starts connecting and fails with EINPROGRESS,
// its data unsent. The connection is made like connect's: dialled through
// the target, the socket connected to the proxy.
//
// TCP_FASTOPEN_CONNECT needs nothing: connect is redirected as usual and
// the first write carries the data to the proxy.

// fastOpen handles sendto or sendmsg with MSG_FASTOPEN to a remote
// destination; it owns fd. data is at most maxDatagram bytes of the
// program's: the rest is the program's to send once connected, as after
// a short write.
func (d *datagrams) fastOpen(c *call, fd int, dest netip.AddrPort, data []byte, flags int) {
	if !d.s.carryDevice(c, fd) {
		unix.Close(fd)
		return
	}
	flags &^= unix.MSG_FASTOPEN
	c.async(func(c *call) {
		defer unix.Close(fd)
		nonblocking := !blocks(fd, flags)
		if err := d.connectThrough(c, fd, dest); err != nil {
			if !errors.Is(err, unix.EINPROGRESS) || nonblocking {
				c.fail(errnoOf(err, unix.ECONNREFUSED))
				return
			}
			if err := waitWritable(c, fd); err != nil {
				c.fail(errnoOf(err, unix.ETIMEDOUT))
				return
			}
		}
		n, err := unix.SendmsgN(fd, data, nil, nil, flags)
		if err != nil {
			c.fail(errnoOf(err, unix.EPIPE))
			return
		}
		d.s.stats.remote("fastopen")
		c.ret(int64(n))
	})
}

// connectThrough dials dest through the agent and connects the program's
// socket to the proxy, as connect does; its error is the connect's.
func (d *datagrams) connectThrough(c *call, fd int, dest netip.AddrPort) error {
	p := d.s.proxy
	ctx, cancel := context.WithTimeout(d.s.ctx, outgoingDialTimeout)
	conn, err := d.s.agent().DialContext(ctx, "tcp", dest.String())
	cancel()
	if err != nil {
		return fmt.Errorf("dial %v through the target: %w", dest, err)
	}
	key, proxyAddr, err := p.bindLoopback(fd, p.tcp)
	if err != nil {
		conn.Close()
		return unix.EADDRNOTAVAIL
	}
	ino := inode(fd)
	p.mu.Lock()
	p.tcpQ[key] = pendingTCP{conn: conn, inode: ino, dns: d.s.splitsDNS(dest)}
	p.peers[ino] = dest
	p.mu.Unlock()
	err = unix.Connect(fd, sockaddrOf(proxyAddr))
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		p.mu.Lock()
		delete(p.tcpQ, key)
		delete(p.peers, ino)
		p.mu.Unlock()
		conn.Close()
	}
	return err
}

// waitWritable waits for a blocking socket's connection to the proxy,
// which is on this machine's loopback and takes microseconds.
func waitWritable(c *call, fd int) error {
	return waitConnected(c, fd, time.Second, 10*time.Second)
}

// waitConnected waits until fd's non-blocking connect ends, for at most
// limit, polling in steps so that a caller whose call ended (a signal
// interrupted it, the thread died) is noticed within a step. It returns
// the connect's outcome (SO_ERROR), errCallerGone or ETIMEDOUT.
func waitConnected(c *call, fd int, step, limit time.Duration) error {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for waited := time.Duration(0); waited < limit; waited += step {
		pfd[0].Revents = 0
		if _, err := unix.Poll(pfd, int(step.Milliseconds())); err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if pfd[0].Revents != 0 {
			soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err != nil {
				return err
			}
			if soerr != 0 {
				return unix.Errno(soerr)
			}
			return nil
		}
		if !c.valid() {
			return errCallerGone
		}
	}
	return unix.ETIMEDOUT
}

// carryDevice readies a socket bound to a device (SO_BINDTODEVICE) for
// the loopback proxy, which only "lo" reaches: the device is the pod's
// choice of interface, and the target's own routes choose it for the
// connection through the target. Unbinding needs CAP_NET_RAW; without it
// the call fails with EPERM and a warning rather than going out of this
// machine's device. It reports whether the call may proceed (otherwise it
// was answered).
func (s *Supervisor) carryDevice(c *call, fd int) bool {
	dev, err := unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
	if err != nil || dev == "" || dev == "lo" {
		return true
	}
	if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ""); err == nil {
		s.log.Debug("unbound a socket from its device to carry it through the target", "device", dev)
		return true
	}
	c.answered = true
	c.fail(unix.EPERM)
	msg := fmt.Sprintf("a socket bound to device %q (SO_BINDTODEVICE) cannot go through the target: remocal "+
		"must unbind it, which needs CAP_NET_RAW; its connect or send fails with EPERM instead of leaving "+
		"through this machine's %s", dev, dev)
	s.wg.Go(func() {
		s.warnf("%s", msg)
		s.emit(Event{Kind: daemon.EventWarning, Message: msg})
	})
	return false
}
