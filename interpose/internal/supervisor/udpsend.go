package supervisor

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/seccomp"
)

// The send side of unconnected sockets (see udp.go): sendto and sendmmsg
// with a destination the rules send through the target.

// destOf reads the destination sockaddr at addr; ok is false for families
// that are not ours (AF_UNIX, AF_NETLINK, ...) or an unreadable one, which
// the kernel then judges.
func destOf(c *call, addr, length uint64) (netip.AddrPort, bool) {
	if addr == 0 || length < 2 || length > 128 {
		return netip.AddrPort{}, false
	}
	buf := make([]byte, length)
	if err := seccomp.ReadMemory(c.tid, addr, buf); err != nil {
		return netip.AddrPort{}, false
	}
	dest, ok := parseSockaddr(buf)
	return netip.AddrPortFrom(dest.Addr().Unmap(), dest.Port()), ok
}

// sendto handles sendto(fd, buf, len, flags, addr, addrlen) with an address
// (the filter lets the others through).
func (d *datagrams) sendto(c *call) {
	dest, ok := destOf(c, c.arg(4), c.arg(5))
	if !ok || (!d.remote("udp", dest) && !d.remote("tcp", dest)) {
		c.cont()
		return
	}
	d.send(c, dest, int(c.arg(3)), func(stream bool) ([]byte, error) {
		size := c.arg(2)
		if size > maxDatagram {
			if !stream {
				return nil, unix.EMSGSIZE
			}
			size = maxDatagram // a short write
		}
		data := make([]byte, size)
		return data, seccomp.ReadMemory(c.tid, c.arg(1), data)
	})
}

// sendmsg handles sendmsg(fd, msg, flags).
func (d *datagrams) sendmsg(c *call) {
	raw := make([]byte, msghdrSize)
	if err := seccomp.ReadMemory(c.tid, c.arg(1), raw); err != nil {
		c.cont()
		return
	}
	h := parseMsghdr(raw)
	dest, ok := destOf(c, h.name, uint64(h.namelen))
	if !ok || (!d.remote("udp", dest) && !d.remote("tcp", dest)) {
		c.cont()
		return
	}
	d.send(c, dest, int(c.arg(2)), func(stream bool) ([]byte, error) {
		iovs, err := readIovecs(c.tid, h.iov, h.iovlen)
		if err != nil {
			return nil, err
		}
		return gather(c.tid, iovs, stream)
	})
}

// send carries out a send to a remote destination: a datagram, or a TCP
// Fast Open connection; other sockets continue (a connected TCP socket
// ignores the address). read fetches the data from the program.
func (d *datagrams) send(c *call, dest netip.AddrPort, flags int, read func(stream bool) ([]byte, error)) {
	fd, ok := c.socketFD()
	if !ok {
		return
	}
	network := socketNetwork(fd)
	udp := network == "udp" && d.remote("udp", dest)
	tfo := network == "tcp" && flags&unix.MSG_FASTOPEN != 0 && d.remote("tcp", dest)
	if !udp && !tfo {
		unix.Close(fd)
		c.cont()
		return
	}
	data, err := read(tfo)
	if err != nil || !c.valid() { // what was read is the caller's only if it still waits
		unix.Close(fd)
		c.fail(errnoOf(err, unix.EFAULT))
		return
	}
	if tfo {
		d.fastOpen(c, fd, dest, data, flags) // takes fd
		return
	}
	defer unix.Close(fd)
	d.sendDatagram(c, fd, dest, data)
}

func (d *datagrams) sendDatagram(c *call, fd int, dest netip.AddrPort, data []byte) {
	if !d.s.carryDevice(c, fd) {
		return
	}
	ds, err := d.socket(fd)
	if err != nil || !c.valid() {
		c.fail(errnoOf(err, unix.EINVAL))
		return
	}
	if err := d.enqueue(ds, dest, data); err != nil {
		c.fail(errnoOf(err, unix.ENETUNREACH))
		return
	}
	d.s.stats.remote("send-udp")
	c.ret(int64(len(data)))
}

// sendmmsg handles sendmmsg(fd, msgvec, vlen, flags) when a message names
// a destination the rules send through the target. The call is answered
// as a whole, so messages to other destinations are sent here too.
func (d *datagrams) sendmmsg(c *call) {
	vlen := min(c.arg(2), maxIovecs)
	if vlen == 0 {
		c.cont()
		return
	}
	raw := make([]byte, vlen*mmsghdrSize)
	if err := seccomp.ReadMemory(c.tid, c.arg(1), raw); err != nil {
		c.cont()
		return
	}
	dests := make([]netip.AddrPort, vlen)
	any := false
	for i := range dests {
		h := parseMsghdr(raw[i*mmsghdrSize:])
		if dest, ok := destOf(c, h.name, uint64(h.namelen)); ok && d.remote("udp", dest) {
			dests[i], any = dest, true
		}
	}
	if !any {
		c.cont()
		return
	}
	fd, ok := c.socketFD()
	if !ok {
		return
	}
	defer unix.Close(fd)
	if socketNetwork(fd) != "udp" || !d.s.carryDevice(c, fd) {
		if !c.answered {
			c.cont()
		}
		return
	}
	d.sendEach(c, fd, raw, dests)
}

// sendEach sends the messages of a sendmmsg in order, and answers with how
// many went out, writing each one's msg_len. Every message is read before
// any is sent: what was read is the caller's only if it still waits then.
func (d *datagrams) sendEach(c *call, fd int, raw []byte, dests []netip.AddrPort) {
	ds, err := d.socket(fd)
	if err != nil {
		c.fail(errnoOf(err, unix.EINVAL))
		return
	}
	msgs := make([][]byte, 0, len(dests))
	for i := range dests {
		h := parseMsghdr(raw[i*mmsghdrSize:])
		iovs, err := readIovecs(c.tid, h.iov, h.iovlen)
		var data []byte
		if err == nil {
			data, err = gather(c.tid, iovs, false)
		}
		if err != nil {
			break // sent up to here, as the kernel stops at a bad message
		}
		msgs = append(msgs, data)
	}
	if len(msgs) == 0 || !c.valid() {
		c.fail(unix.EFAULT)
		return
	}
	sent := 0
	for i, data := range msgs {
		if dests[i].IsValid() {
			err = d.enqueue(ds, dests[i], data)
		} else {
			err = sendLocal(c, fd, ds.family, parseMsghdr(raw[i*mmsghdrSize:]), data)
		}
		if err != nil {
			if sent == 0 {
				c.fail(errnoOf(err, unix.EINVAL))
				return
			}
			break
		}
		lenAt := c.arg(1) + uint64(i*mmsghdrSize) + msghdrSize
		seccomp.WriteMemory(c.tid, lenAt, binary.LittleEndian.AppendUint32(nil, uint32(len(data))))
		sent++
	}
	d.s.stats.remote("sendmmsg-udp")
	c.ret(int64(sent))
}

// sendLocal sends one message of a sendmmsg that stays on this machine, to
// its own address or the socket's peer.
func sendLocal(c *call, fd, family int, h msghdr, data []byte) error {
	var to unix.Sockaddr
	if dest, ok := destOf(c, h.name, uint64(h.namelen)); ok {
		if family == unix.AF_INET6 {
			// An IPv4 destination on an IPv6 socket is IPv4-mapped.
			dest = netip.AddrPortFrom(netip.AddrFrom16(dest.Addr().As16()), dest.Port())
		}
		to = sockaddrOf(dest)
	}
	_, err := unix.SendmsgN(fd, data, nil, to, int(c.arg(3))|unix.MSG_DONTWAIT)
	return err
}
