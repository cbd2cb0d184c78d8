// Package supervisor answers the seccomp notifications of a supervised
// process tree: it decides each intercepted system call with the rules, lets
// local ones continue, and carries out remote ones through the agent —
// handing the program memfds of remote files, writing emulated stat
// results into its memory, and connecting its sockets to a local proxy that
// relays through the target's network.
//
// Cheap decisions are made inline on the notification loop, which runs on a
// locked OS thread; anything that waits on the network runs on its own
// goroutine so the loop keeps serving the rest of the tree.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/sourcegraph/conc"
	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/interpose/internal/inflight"
	"github.com/remocal/remocal/interpose/internal/rules"
	"github.com/remocal/remocal/interpose/internal/seccomp"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/wire"
)

// Config configures a supervisor.
type Config struct {
	// Client is the agent connection; Reconnected replaces it.
	Client    *agentclient.Client
	Paths     *rules.Paths
	Outgoing  *rules.Outgoing
	Processes *rules.Processes
	Incoming  IncomingOptions
	// Hostname is the target's hostname for uname and
	// /proc/sys/kernel/hostname; empty keeps the local one.
	Hostname string
	// DNS serves the target's resolver files (/etc/resolv.conf with
	// use-vc, /etc/hosts, a hosts line in /etc/nsswitch.conf).
	DNS bool
	// DNSNames, if set, splits queries to the target's nameserver by name
	// between the target's DNS and this machine's resolver.
	DNSNames *rules.DNSNames
	// TargetNetwork, if set, makes sockets in the target's network
	// namespace: outgoing TCP connections are then connected there and
	// handed to the program instead of relayed (direct.go).
	TargetNetwork TargetNetwork
	// TransparentPID is a process whose own system calls are never
	// intercepted, while its descendants are: a debugger that launches the
	// program itself.
	TransparentPID int
	// Stderr receives warnings meant for the user.
	Stderr io.Writer
	// OnEvent, if set, receives subscriptions made or refused and the loss
	// of the agent connection as data, besides the Stderr messages. It is
	// called from the goroutine doing the work (never from the
	// notification loop), possibly from several at once; it must return
	// quickly, since the program may be waiting for that work.
	OnEvent func(Event)
	// OnAbort, if set, is told that the session must end: a port the
	// program listens on is held by another session and
	// IncomingOptions.OnConflict is abort. The error is a
	// *ConflictError. It must return quickly.
	OnAbort func(error)
	Logger  *slog.Logger
}

// IncomingOptions say what happens when the program listens on a port.
type IncomingOptions struct {
	// Mode is wire.ModeMirror or wire.ModeSteal; "" disables incoming.
	Mode   wire.Mode
	Filter *wire.HTTPFilter
	// Ports, if non-empty, limits subscriptions to these local ports.
	Ports       []uint16
	IgnorePorts []uint16
	// PortMapping maps a local port to the target's port.
	PortMapping map[uint16]uint16
	// OnConflict says what happens when another session holds the port:
	// abort ("", the default), continue, or override (through the
	// operator only).
	OnConflict config.OnConflict
}

// Supervisor serves one or more listeners of one session.
type Supervisor struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     conc.WaitGroup

	stop     int          // eventfd that wakes the loops to exit
	serving  atomic.Int32 // loops running
	fs       *remoteFS
	proxy    *proxy
	incoming *incoming
	origins  *origins       // delivered connections' addresses in the target (peer.go)
	dgram    *datagrams     // sockets that send to an address: udp.go
	sockets  *targetSockets // nil: no Config.TargetNetwork (directpool.go)

	client atomic.Pointer[agentclient.Client]
	stats  statsCounter

	listenersMu sync.Mutex
	listeners   []*seccomp.Listener
	inflight    []*inflight.Table

	// procs remembers, per thread, whether its executable stays local.
	procMu sync.Mutex
	procs  map[int]procInfo
	// deniedPIDs are the processes already warned about (see denied).
	deniedPIDs map[int]bool
	// startTime, if set, replaces threadStartTime (tests).
	startTime func(tid int) (uint64, error)
}

// New starts a supervisor's proxies; Serve then attaches listeners.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel, stop: stop}
	s.client.Store(cfg.Client)
	if s.fs, err = newRemoteFS(s); err != nil {
		s.Close()
		return nil, err
	}
	if s.proxy, err = newProxy(s); err != nil {
		s.Close()
		return nil, err
	}
	s.incoming = newIncoming(s)
	s.origins = newOrigins()
	s.dgram = newDatagrams(s)
	if cfg.TargetNetwork != nil {
		s.sockets = newTargetSockets(s, cfg.TargetNetwork)
	}
	return s, nil
}

// Serve runs a notification loop for l until every process under it has
// exited or the supervisor closes. It takes ownership of l, which stays open
// until Close has waited for every handler: a handler still carrying out a
// call must be able to answer it.
//
// t, if not nil, is shared with l's keeper: every notification received
// and not yet answered is recorded there, so that the keeper answers it if
// this process dies. Serve takes ownership of t too.
func (s *Supervisor) Serve(l *seccomp.Listener, t *inflight.Table) {
	s.listenersMu.Lock()
	s.listeners = append(s.listeners, l)
	if t != nil {
		s.inflight = append(s.inflight, t)
	}
	s.listenersMu.Unlock()
	s.serving.Add(1)
	s.wg.Go(func() {
		s.loop(l, t)
		if s.serving.Add(-1) == 0 && s.ctx.Err() == nil {
			// No process uses this supervisor's filters any more, so
			// nothing listens on the ports it subscribed: end the
			// subscriptions now, not with the session. A program that
			// joins the session again (a debugger restarting it) has a
			// supervisor of its own, which subscribes them again; the old
			// subscriptions would deliver every request to it once more.
			s.incoming.close()
		}
	})
}

// Close stops the loops, ends relayed connections and waits for every
// goroutine. Processes still running under a closed supervisor are the
// keeper's (see package keeper).
func (s *Supervisor) Close() error {
	s.cancel()
	if s.stop > 0 {
		unix.Write(s.stop, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
	if s.proxy != nil {
		s.proxy.close()
	}
	if s.dgram != nil {
		s.dgram.close()
	}
	s.wg.Wait()
	if s.sockets != nil {
		s.sockets.close()
	}
	s.listenersMu.Lock()
	for _, l := range s.listeners {
		l.Close()
	}
	s.listeners = nil
	for _, t := range s.inflight {
		t.Close()
	}
	s.inflight = nil
	s.listenersMu.Unlock()
	if s.incoming != nil {
		s.incoming.close()
	}
	if s.fs != nil {
		s.fs.close()
	}
	if s.stop > 0 {
		unix.Close(s.stop)
	}
	return nil
}

// Stats counts what the supervisor did, for session details and tests.
type Stats struct {
	Notified  uint64
	Continued uint64
	// Delivered counts connections and requests received through every
	// subscription, ended ones included.
	Delivered uint64
	// Remote counts operations carried out through the target, by kind
	// ("open", "stat", "connect", "listen", ...).
	Remote map[string]uint64
}

type statsCounter struct {
	notified, continued atomic.Uint64 // hot: once per notification
	// delivered counts what ended subscriptions received; the live ones
	// keep their own count.
	delivered atomic.Uint64

	mu sync.Mutex
	v  Stats
}

func (st *statsCounter) remote(what string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.v.Remote == nil {
		st.v.Remote = map[string]uint64{}
	}
	st.v.Remote[what]++
}

func (st *statsCounter) add(notified, continued uint64) {
	st.notified.Add(notified)
	st.continued.Add(continued)
}

// Snapshot returns a copy of the counters.
func (s *Supervisor) Snapshot() Stats {
	delivered := s.delivered() // before stats.mu: incoming counts under its own lock
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	cp := s.stats.v
	cp.Notified, cp.Continued = s.stats.notified.Load(), s.stats.continued.Load()
	cp.Delivered = delivered
	cp.Remote = map[string]uint64{}
	for k, v := range s.stats.v.Remote {
		cp.Remote[k] = v
	}
	return cp
}

// agent is the current agent connection.
func (s *Supervisor) agent() *agentclient.Client { return s.client.Load() }

// AgentLost is told by the session that the agent connection ended. Until
// Reconnected, remote files fail with EIO and connections through the
// target with ENETUNREACH (the closed client's errors). Cached remote files
// must not outlive the connection: the program would see some remote files
// and not others.
func (s *Supervisor) AgentLost() {
	s.fs.forget()
}

// Reconnected switches to a new connection to the same agent and asks it
// again for the incoming traffic the program had: the agent dropped the
// old connection's subscriptions with it.
func (s *Supervisor) Reconnected(c *agentclient.Client) {
	if s.ctx.Err() != nil {
		return
	}
	s.client.Store(c)
	s.fs.forget()
	s.wg.Go(s.incoming.resubscribe)
}

// warnf tells the user something went wrong that the program itself cannot
// report.
func (s *Supervisor) warnf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Stderr, "remocal: "+format+"\n", args...)
}

// loop receives notifications on a locked thread. Waiting in poll rather
// than in the receive ioctl lets the loop notice both a stop request and the
// moment the last supervised process exits (the listener reports POLLHUP).
func (s *Supervisor) loop(l *seccomp.Listener, t *inflight.Table) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := l.SetSyncWakeup(); err != nil {
		s.log.Debug("synchronous wake-up unavailable", "err", err)
	}
	fds := []unix.PollFd{{Fd: int32(l.Fd()), Events: unix.POLLIN}, {Fd: int32(s.stop), Events: unix.POLLIN}}
	var n seccomp.Notif
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			s.log.Error("poll seccomp listener", "err", err)
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents&unix.POLLIN == 0 {
			// POLLHUP: no process uses the filter any more.
			return
		}
		if err := l.Receive(&n); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // the caller died before we got to it
			}
			s.log.Error("receive seccomp notification", "err", err)
			return
		}
		if t != nil {
			t.Received(n.ID)
		}
		s.stats.add(1, 0)
		s.dispatch(l, t, n)
	}
}

// call is one notification being answered.
type call struct {
	s   *Supervisor
	l   *seccomp.Listener
	t   *inflight.Table // nil: not recorded
	n   seccomp.Notif
	tid int
	// answered is set once the call was failed for lack of access to
	// the caller (denied): cont must not answer it again.
	answered bool
}

func (c *call) arg(i int) uint64 { return c.n.Data.Args[i] }

func (c *call) cont() {
	if c.answered {
		return
	}
	c.s.stats.add(0, 1)
	c.l.Continue(c.n.ID)
}

func (c *call) ret(v int64)       { c.l.Return(c.n.ID, v) }
func (c *call) fail(e unix.Errno) { c.l.Fail(c.n.ID, e) }
func (c *call) valid() bool       { return c.l.Valid(c.n.ID) }

// async carries out the call on a goroutine. It is recorded in its own
// in-flight slot before the loop moves on to the next notification.
func (c *call) async(fn func(*call)) {
	slot := -1
	if c.t != nil {
		slot = c.t.Hold(c.n.ID)
	}
	c.s.wg.Go(func() {
		defer c.t.Release(slot)
		fn(c)
	})
}

func (s *Supervisor) dispatch(l *seccomp.Listener, t *inflight.Table, n seccomp.Notif) {
	c := &call{s: s, l: l, t: t, n: n, tid: int(n.Pid)}
	nr := int(n.Data.Nr)
	if nr == seccomp.SysPrctl {
		c.ret(seccomp.ProbeAnswer)
		return
	}
	if nr == seccomp.SysExecve || nr == seccomp.SysExecveat {
		s.forgetProcess(c.tid)
		c.cont()
		return
	}
	if s.processIsLocal(c.tid) {
		c.cont()
		return
	}
	switch nr {
	case seccomp.SysOpen, seccomp.SysOpenat, seccomp.SysOpenat2:
		s.fs.open(c)
	case seccomp.SysStat, seccomp.SysLstat, seccomp.SysNewfstatat, seccomp.SysStatx:
		s.fs.stat(c)
	case seccomp.SysAccess, seccomp.SysFaccessat, seccomp.SysFaccessat2:
		s.fs.access(c)
	case seccomp.SysReadlink, seccomp.SysReadlinkat:
		s.fs.readlink(c)
	case seccomp.SysConnect:
		s.proxy.connect(c)
	// Addresses of redirected and delivered sockets (peer.go, accept.go).
	case seccomp.SysGetpeername, seccomp.SysGetsockname:
		s.sockName(c, nr == seccomp.SysGetpeername)
	case seccomp.SysAccept, seccomp.SysAccept4:
		s.accept(c)
	case seccomp.SysListen:
		s.incoming.listen(c)
	case seccomp.SysUname:
		s.uname(c)
	// Sockets that send to an address: udp.go, udpsend.go, udprecv.go.
	case seccomp.SysSendto:
		s.dgram.sendto(c)
	case seccomp.SysSendmsg:
		s.dgram.sendmsg(c)
	case seccomp.SysSendmmsg:
		s.dgram.sendmmsg(c)
	case seccomp.SysRecvfrom:
		s.dgram.recvfrom(c)
	case seccomp.SysRecvmsg:
		s.dgram.recvmsg(c)
	default:
		c.cont()
	}
}

// uname reports the target's hostname in the local machine's utsname.
func (s *Supervisor) uname(c *call) {
	if s.cfg.Hostname == "" {
		c.cont()
		return
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		c.cont()
		return
	}
	clear(u.Nodename[:])
	copy(u.Nodename[:len(u.Nodename)-1], s.cfg.Hostname)
	buf := unsafeBytes(&u)
	if !c.valid() {
		return
	}
	if err := seccomp.WriteMemory(c.tid, c.arg(0), buf); err != nil {
		c.fail(unix.EFAULT)
		return
	}
	c.ret(0)
}

// errnoOf turns a remote failure into the errno the program should see.
func errnoOf(err error, fallback unix.Errno) unix.Errno {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	var we *wire.Error
	if errors.As(err, &we) {
		if we.Errno != 0 {
			return unix.Errno(we.Errno)
		}
		switch we.Code {
		case wire.CodeNotFound:
			return unix.ENOENT
		case wire.CodePermissionDenied:
			return unix.EACCES
		case wire.CodeTooLarge:
			return unix.EFBIG
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return unix.ETIMEDOUT
	}
	return fallback
}
