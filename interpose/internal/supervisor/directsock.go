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

// tcpClose is TCP_CLOSE, the state of a TCP socket never connected.
const tcpClose = 7

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
	// A connect on a socket already connecting or connected (some
	// programs call it again to learn whether a non-blocking connect
	// completed) is the kernel's to answer: EALREADY or EISCONN.
	if info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil && info.State != tcpClose {
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
// (not of the socket) that only the table shows. Links are read relative
// to the directory's descriptor: each path through /proc costs a lookup.
func scanDescriptors(tid, progFD int, ino uint64) (cloexec bool, why string) {
	base := "/proc/" + strconv.Itoa(tid)
	dirfd, err := unix.Open(base+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, "descriptor table unreadable"
	}
	d := os.NewFile(uintptr(dirfd), base+"/fd")
	names, err := d.Readdirnames(-1)
	defer d.Close()
	if err != nil {
		return false, "descriptor table unreadable"
	}
	self := strconv.Itoa(progFD)
	sock := "socket:[" + strconv.FormatUint(ino, 10) + "]"
	buf := make([]byte, 64)
	for _, name := range names {
		if name == self {
			continue
		}
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			continue // closed meanwhile
		}
		switch string(buf[:n]) {
		case sock:
			return false, "the socket has a second descriptor"
		case "anon_inode:[eventpoll]":
			if epollWatches(base, name, ino) {
				return false, "registered in an epoll instance before connect"
			}
		}
	}
	flags, ok := fdinfoField(base, self, "flags:")
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
func epollWatches(base, name string, ino uint64) bool {
	f, err := os.Open(base + "/fdinfo/" + name)
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
func fdinfoField(base, name, key string) (string, bool) {
	fd, err := unix.Open(base+"/fdinfo/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	var b [512]byte
	n, err := unix.Read(fd, b[:])
	unix.Close(fd)
	if err != nil || n <= 0 {
		return "", false
	}
	for line := range strings.Lines(string(b[:n])) {
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

// options are a socket's values of the options carried over.
type options struct {
	ints       []int // by intOptions (then intOptions6); unreadable: -1
	linger     unix.Linger
	rcvtimeo   unix.Timeval
	sndtimeo   unix.Timeval
	congestion string
}

func optionList(family int) []sockOpt {
	if family == unix.AF_INET6 {
		return append(intOptions[:len(intOptions):len(intOptions)], intOptions6...)
	}
	return intOptions
}

// readOptions reads a socket's options.
func readOptions(fd, family int) *options {
	list := optionList(family)
	o := &options{ints: make([]int, len(list))}
	for i, opt := range list {
		v, err := unix.GetsockoptInt(fd, opt.level, opt.opt)
		if err != nil {
			v = -1
		}
		o.ints[i] = v
	}
	if l, err := unix.GetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER); err == nil {
		o.linger = *l
	}
	if t, err := unix.GetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO); err == nil {
		o.rcvtimeo = *t
	}
	if t, err := unix.GetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO); err == nil {
		o.sndtimeo = *t
	}
	o.congestion, _ = unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	return o
}

// copyOptions gives the new socket to the options the program set on
// from: those whose value differs from a new socket's own, def (read once
// per family: a new socket's options are the namespace's defaults). It
// returns why it could not, or "". Options that cannot be read back
// (socket filters, TCP_MD5SIG keys, TCP_FASTOPEN_CONNECT) are not carried;
// see docs/exec.md.
func copyOptions(from, to, family int, def *options) string {
	prog := readOptions(from, family)
	for i, o := range optionList(family) {
		pv := prog.ints[i]
		if pv == -1 || pv == def.ints[i] {
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
	if prog.linger != def.linger {
		if err := unix.SetsockoptLinger(to, unix.SOL_SOCKET, unix.SO_LINGER, &prog.linger); err != nil {
			return "cannot set SO_LINGER in the target: " + err.Error()
		}
	}
	if prog.rcvtimeo != def.rcvtimeo {
		if err := unix.SetsockoptTimeval(to, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &prog.rcvtimeo); err != nil {
			return "cannot set SO_RCVTIMEO in the target: " + err.Error()
		}
	}
	if prog.sndtimeo != def.sndtimeo {
		if err := unix.SetsockoptTimeval(to, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &prog.sndtimeo); err != nil {
			return "cannot set SO_SNDTIMEO in the target: " + err.Error()
		}
	}
	if prog.congestion != "" && prog.congestion != def.congestion {
		if err := unix.SetsockoptString(to, unix.IPPROTO_TCP, unix.TCP_CONGESTION, prog.congestion); err != nil {
			return "cannot set TCP_CONGESTION " + prog.congestion + " in the target: " + err.Error()
		}
	}
	return ""
}
