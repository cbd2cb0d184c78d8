package supervisor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Closing a listener ends its subscription: when the program closes the
// last listening socket of a port (close, dup2 over it, exec with
// CLOEXEC, exit), the target's port goes back to the target's
// application, and to other sessions, while the session goes on.
//
// close is far too frequent a system call to intercept, so the supervisor
// learns of closed sockets from the kernel instead: sock_diag's destroy
// groups announce every TCP socket of the network namespace that is freed,
// with its port. An announcement for a subscribed port makes the
// supervisor ask whether anything still listens there; the socket's
// identity cannot be matched directly, because the announced socket may be
// the TCP subflow of an MPTCP listener (Go's default) rather than the
// program's socket.

const (
	sknlgrpInetTCPDestroy  = 1 // SKNLGRP_INET_TCP_DESTROY
	sknlgrpInet6TCPDestroy = 3 // SKNLGRP_INET6_TCP_DESTROY
	sockDiagByFamily       = 20
	tcpListen              = 10
)

// isListener reports whether the socket with this cookie is one the
// program listens on and the supervisor subscribed.
func (in *incoming) isListener(cookie uint64) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	_, ok := in.listeners[cookie]
	return ok
}

// anyListener reports whether the program listens on a subscribed port
// at all: until it does, accepts continue without a look.
func (in *incoming) anyListener() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.listeners) > 0
}

// relisten completes listen(2) for another socket on a port already
// wanted (SO_REUSEPORT, or a listener closed and opened again), under the
// lock checkClosed holds, so that a close seen meanwhile cannot end the
// subscription the new socket is to receive. It reports false for a port
// not wanted yet.
func (in *incoming) relisten(c *call, fd int, port uint16, cookie uint64) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, ok := in.wanted[port]; !ok {
		return false
	}
	if err := unix.Listen(fd, int(int32(c.arg(1)))); err != nil {
		c.fail(errnoOf(err, unix.EINVAL))
		return true
	}
	in.listeners[cookie] = port
	c.ret(0)
	return true
}

// watchCloses follows the destroy announcements until the supervisor
// stops. Without them (no sock_diag, or no permission to join its groups)
// subscriptions end with the session, as before.
func (in *incoming) watchCloses() {
	f, err := openDestroyWatch()
	if err != nil {
		in.s.log.Debug("closed listeners will not end their subscriptions", "err", err)
		return
	}
	in.s.wg.Go(func() {
		<-in.s.ctx.Done()
		f.Close()
	})
	in.s.wg.Go(func() {
		defer f.Close()
		in.readDestroys(f)
	})
}

func openDestroyWatch() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	groups := uint32(1<<(sknlgrpInetTCPDestroy-1) | 1<<(sknlgrpInet6TCPDestroy-1))
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("join sock_diag's destroy groups: %w", err)
	}
	return os.NewFile(uintptr(fd), "sock_diag-destroy"), nil
}

func (in *incoming) readDestroys(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 32<<10)
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		switch {
		case err != nil:
			return // closed: the supervisor stops
		case errors.Is(rerr, unix.ENOBUFS):
			// Announcements were lost: look at every port.
			in.checkAll()
		case rerr != nil:
			in.s.log.Debug("read sock_diag announcements", "err", rerr)
			return
		default:
			for _, port := range destroyedPorts(buf[:n]) {
				in.checkClosed(port)
			}
		}
	}
}

// destroyedPorts lists the local ports of the announced sockets that had
// no peer: listeners (and sockets that never connected). The program's
// accepted connections share the listener's port; each one that ends
// would otherwise cost a look at the port's listeners.
func destroyedPorts(b []byte) []uint16 {
	var ports []uint16
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			break
		}
		// inet_diag_msg: family, state, timer, retrans, then the
		// source and destination ports.
		if msg := b[unix.NLMSG_HDRLEN:l]; len(msg) >= 8 && binary.BigEndian.Uint16(msg[6:]) == 0 {
			ports = append(ports, binary.BigEndian.Uint16(msg[4:]))
		}
		b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
	}
	return ports
}

func (in *incoming) checkAll() {
	in.mu.Lock()
	ports := make([]uint16, 0, len(in.wanted))
	for p := range in.wanted {
		ports = append(ports, p)
	}
	in.mu.Unlock()
	for _, p := range ports {
		in.checkClosed(p)
	}
}

// checkClosed ends the subscription of port if nothing listens on it any
// more.
func (in *incoming) checkClosed(port uint16) {
	in.mu.Lock()
	w, ok := in.wanted[port]
	if !ok {
		in.mu.Unlock()
		return
	}
	if listening, err := listeningOn(port); err != nil || listening {
		in.mu.Unlock()
		if err != nil {
			in.s.log.Debug("list listening sockets", "port", port, "err", err)
		}
		return
	}
	delete(in.wanted, port)
	sub := in.subs[port]
	delete(in.subs, port)
	for cookie, p := range in.listeners {
		if p == port {
			delete(in.listeners, cookie)
		}
	}
	if sub != nil {
		in.s.stats.delivered.Add(sub.Deliveries.Load())
	}
	in.mu.Unlock()
	if sub == nil {
		return
	}
	ctx, cancel := context.WithTimeout(in.s.ctx, 5*time.Second)
	defer cancel()
	if err := sub.Close(ctx); err != nil {
		in.s.log.Debug("unsubscribe", "port", w.remote, "err", err)
	}
	in.s.warnf("the program closed its listener on port %d: port %d of the target is no longer %s", port, w.remote, modeWord(in.s.cfg.Incoming))
}

func modeWord(o IncomingOptions) string {
	if o.Mode == "steal" {
		return "stolen"
	}
	return "mirrored"
}

// listeningOn reports whether a TCP socket of this network namespace
// listens on port, asking sock_diag for IPv4 and IPv6 listeners.
func listeningOn(port uint16) (bool, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return false, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		found, err := dumpListeners(fd, family, port)
		if err != nil || found {
			return found, err
		}
	}
	return false, nil
}

func dumpListeners(fd int, family uint8, port uint16) (bool, error) {
	// nlmsghdr, then inet_diag_req_v2: family, protocol, ext, pad,
	// states, and a zero inet_diag_sockid (48 bytes).
	req := make([]byte, unix.NLMSG_HDRLEN+56)
	binary.NativeEndian.PutUint32(req, uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], sockDiagByFamily)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	req[16], req[17] = family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[20:], 1<<tcpListen)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return false, fmt.Errorf("sock_diag request: %w", err)
	}
	buf := make([]byte, 32<<10)
	found := false
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return false, fmt.Errorf("sock_diag answer: %w", err)
		}
		for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b))
			typ := binary.NativeEndian.Uint16(b[4:])
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return false, errors.New("sock_diag answer: bad message length")
			}
			switch typ {
			case unix.NLMSG_DONE:
				return found, nil
			case unix.NLMSG_ERROR:
				return false, errors.New("sock_diag answer: error")
			}
			if msg := b[unix.NLMSG_HDRLEN:l]; len(msg) >= 6 && binary.BigEndian.Uint16(msg[4:]) == port {
				found = true
			}
			b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
		}
	}
}
