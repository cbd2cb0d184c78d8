package supervisor

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// What a socket connected in the target must carry over from the
// program's own (direct.go), and what makes that impossible.

// whyConnected is directFacts' answer for a socket that is connected
// already.
const whyConnected = "connected already"

// directFacts reads the program's socket (fd: its copy; progFD: its
// number in thread tid) and returns what the new socket must carry, or
// why there must be none.
func directFacts(tid, progFD, fd int) (directSocket, string) {
	var f directSocket
	var err error
	if f.family, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil ||
		(f.family != unix.AF_INET && f.family != unix.AF_INET6) {
		return f, "not an IP socket"
	}
	if proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); err != nil || proto != unix.IPPROTO_TCP {
		return f, "not TCP (MPTCP, SCTP, ...)"
	}
	if _, err := unix.Getpeername(fd); err == nil {
		return f, whyConnected
	}
	sa, err := unix.Getsockname(fd)
	if local, ok := addrPortOf(sa); err != nil || !ok || local.Port() != 0 || !local.Addr().IsUnspecified() {
		return f, "bound before connect"
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return f, "file status flags unreadable"
	}
	if fl&unix.O_ASYNC != 0 {
		return f, "O_ASYNC (signal-driven I/O)"
	}
	f.nonblocking = fl&unix.O_NONBLOCK != 0
	var why string
	f.cloexec, why = scanDescriptors(tid, progFD, inode(fd))
	return f, why
}

// scanDescriptors looks through the program's descriptor table, which the
// new socket cannot update everywhere: an epoll instance watching the
// socket, or a second descriptor of it, would keep the old socket. It
// also returns whether progFD is close-on-exec, a flag of the descriptor
// (not of the socket) that only the table shows.
func scanDescriptors(tid, progFD int, ino uint64) (cloexec bool, why string) {
	dir := "/proc/" + strconv.Itoa(tid) + "/fd/"
	d, err := os.Open(dir)
	if err != nil {
		return false, "descriptor table unreadable"
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return false, "descriptor table unreadable"
	}
	self := strconv.Itoa(progFD)
	sock := "socket:[" + strconv.FormatUint(ino, 10) + "]"
	for _, name := range names {
		if name == self {
			continue
		}
		link, err := os.Readlink(dir + name)
		if err != nil {
			continue // closed meanwhile
		}
		switch link {
		case sock:
			return false, "the socket has a second descriptor"
		case "anon_inode:[eventpoll]":
			if epollWatches(tid, name, ino) {
				return false, "registered in an epoll instance before connect"
			}
		}
	}
	flags, ok := fdinfoField(tid, self, "flags:")
	if !ok {
		return false, "descriptor flags unreadable"
	}
	v, err := strconv.ParseUint(flags, 8, 64)
	if err != nil {
		return false, "descriptor flags unreadable"
	}
	return v&unix.O_CLOEXEC != 0, ""
}

// epollWatches reports whether the epoll instance at descriptor name
// watches the socket with inode ino: its fdinfo lists each watched file
// as "tfd: N events: .. data: .. pos:0 ino:HEX sdev:HEX".
func epollWatches(tid int, name string, ino uint64) bool {
	f, err := os.Open("/proc/" + strconv.Itoa(tid) + "/fdinfo/" + name)
	if err != nil {
		return false
	}
	defer f.Close()
	want := "ino:" + strconv.FormatUint(ino, 16)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "tfd:") {
			continue
		}
		for field := range strings.FieldsSeq(line) {
			if field == want {
				return true
			}
		}
	}
	return false
}

// fdinfoField returns the value of a "key:\tvalue" line of a descriptor's
// fdinfo.
func fdinfoField(tid int, name, key string) (string, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/fdinfo/" + name)
	if err != nil {
		return "", false
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, key); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// sockOpt is an integer option carried over when the program's socket
// differs from a new one made in the target.
type sockOpt struct {
	level, opt int
	name       string
	// half: the kernel reports twice what was set (SO_RCVBUF, SO_SNDBUF).
	half bool
}

var intOptions = []sockOpt{
	{unix.SOL_SOCKET, unix.SO_KEEPALIVE, "SO_KEEPALIVE", false},
	{unix.SOL_SOCKET, unix.SO_RCVBUF, "SO_RCVBUF", true},
	{unix.SOL_SOCKET, unix.SO_SNDBUF, "SO_SNDBUF", true},
	{unix.SOL_SOCKET, unix.SO_PRIORITY, "SO_PRIORITY", false},
	{unix.SOL_SOCKET, unix.SO_MARK, "SO_MARK", false},
	{unix.SOL_SOCKET, unix.SO_OOBINLINE, "SO_OOBINLINE", false},
	{unix.SOL_SOCKET, unix.SO_RCVLOWAT, "SO_RCVLOWAT", false},
	{unix.SOL_SOCKET, unix.SO_REUSEADDR, "SO_REUSEADDR", false},
	{unix.IPPROTO_TCP, unix.TCP_NODELAY, "TCP_NODELAY", false},
	{unix.IPPROTO_TCP, unix.TCP_CORK, "TCP_CORK", false},
	{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, "TCP_KEEPIDLE", false},
	{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, "TCP_KEEPINTVL", false},
	{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, "TCP_KEEPCNT", false},
	{unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT", false},
	{unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, "TCP_NOTSENT_LOWAT", false},
	{unix.IPPROTO_TCP, unix.TCP_WINDOW_CLAMP, "TCP_WINDOW_CLAMP", false},
	{unix.IPPROTO_TCP, unix.TCP_MAXSEG, "TCP_MAXSEG", false},
	{unix.IPPROTO_TCP, unix.TCP_SYNCNT, "TCP_SYNCNT", false},
	{unix.IPPROTO_TCP, unix.TCP_LINGER2, "TCP_LINGER2", false},
	{unix.IPPROTO_IP, unix.IP_TOS, "IP_TOS", false},
	{unix.IPPROTO_IP, unix.IP_TTL, "IP_TTL", false},
}

var intOptions6 = []sockOpt{
	{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, "IPV6_V6ONLY", false},
	{unix.IPPROTO_IPV6, unix.IPV6_TCLASS, "IPV6_TCLASS", false},
	{unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS", false},
}

// copyOptions gives the new socket to the options the program set on
// from: those whose value differs from the new socket's own. It returns
// why it could not, or "". Options that cannot be read back (socket
// filters, TCP_MD5SIG keys, TCP_FASTOPEN_CONNECT) are not carried; see
// docs/exec.md.
func copyOptions(from, to, family int) string {
	opts := intOptions
	if family == unix.AF_INET6 {
		opts = append(opts[:len(opts):len(opts)], intOptions6...)
	}
	for _, o := range opts {
		pv, err := unix.GetsockoptInt(from, o.level, o.opt)
		if err != nil {
			continue // not an option of this socket
		}
		nv, err := unix.GetsockoptInt(to, o.level, o.opt)
		if err != nil || nv == pv {
			continue
		}
		v := pv
		if o.half {
			v = pv / 2
		}
		if err := unix.SetsockoptInt(to, o.level, o.opt, v); err != nil {
			return "cannot set " + o.name + " in the target: " + err.Error()
		}
	}
	if pl, err := unix.GetsockoptLinger(from, unix.SOL_SOCKET, unix.SO_LINGER); err == nil {
		if nl, err := unix.GetsockoptLinger(to, unix.SOL_SOCKET, unix.SO_LINGER); err == nil && *pl != *nl {
			if err := unix.SetsockoptLinger(to, unix.SOL_SOCKET, unix.SO_LINGER, pl); err != nil {
				return "cannot set SO_LINGER in the target: " + err.Error()
			}
		}
	}
	for _, o := range []struct {
		opt  int
		name string
	}{{unix.SO_RCVTIMEO, "SO_RCVTIMEO"}, {unix.SO_SNDTIMEO, "SO_SNDTIMEO"}} {
		pt, err := unix.GetsockoptTimeval(from, unix.SOL_SOCKET, o.opt)
		if err != nil {
			continue
		}
		if nt, err := unix.GetsockoptTimeval(to, unix.SOL_SOCKET, o.opt); err == nil && *pt != *nt {
			if err := unix.SetsockoptTimeval(to, unix.SOL_SOCKET, o.opt, pt); err != nil {
				return "cannot set " + o.name + " in the target: " + err.Error()
			}
		}
	}
	if pc, err := unix.GetsockoptString(from, unix.IPPROTO_TCP, unix.TCP_CONGESTION); err == nil {
		if nc, err := unix.GetsockoptString(to, unix.IPPROTO_TCP, unix.TCP_CONGESTION); err == nil && pc != nc {
			if err := unix.SetsockoptString(to, unix.IPPROTO_TCP, unix.TCP_CONGESTION, pc); err != nil {
				return "cannot set TCP_CONGESTION " + pc + " in the target: " + err.Error()
			}
		}
	}
	return ""
}
