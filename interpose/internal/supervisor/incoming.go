package supervisor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/wire"
)

const subscribeTimeout = 15 * time.Second

// incoming subscribes the target's port when the program starts listening,
// and forwards what the agent delivers to the program's listener.
type incoming struct {
	s *Supervisor

	mu   sync.Mutex
	subs map[uint16]*agentclient.Subscription // by local port
	// wanted is every port the program listens on that is to receive the
	// target's traffic, subscribed or not: what a new agent connection is
	// asked for again.
	wanted map[uint16]wantedPort
	// listeners are the sockets listening on wanted ports, by
	// SO_COOKIE: their accepts report delivered connections' origins.
	listeners map[uint64]uint16
	watch     sync.Once // starts watchCloses
}

type wantedPort struct {
	remote  uint16
	forward netip.AddrPort
}

func newIncoming(s *Supervisor) *incoming {
	return &incoming{s: s, subs: map[uint16]*agentclient.Subscription{}, wanted: map[uint16]wantedPort{},
		listeners: map[uint64]uint16{}}
}

// listen makes the socket listen itself, then subscribes, then completes
// the program's listen(2): when the program proceeds, its socket accepts
// and the target's traffic is on its way, with no window in which the
// target's traffic arrives at a port that is not listening yet.
func (in *incoming) listen(c *call) {
	opts := in.s.cfg.Incoming
	if opts.Mode == "" {
		c.cont()
		return
	}
	fd, ok := c.socketFD()
	if !ok {
		return
	}
	typ, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	v6only, _ := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
	cookie, _ := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
	sa, err := unix.Getsockname(fd)
	bound, ok := addrPortOf(sa)
	port := bound.Port()
	if err != nil || !ok || typ != unix.SOCK_STREAM || port == 0 ||
		slices.Contains(opts.IgnorePorts, port) || (len(opts.Ports) > 0 && !slices.Contains(opts.Ports, port)) {
		unix.Close(fd)
		c.cont()
		return
	}
	// Everything above came from the caller's descriptor table: if the
	// thread died meanwhile, its ID may name another process now, and the
	// socket is a stranger's.
	if !c.valid() {
		unix.Close(fd)
		return
	}
	if in.relisten(c, fd, port, cookie) {
		unix.Close(fd)
		return
	}
	// The descriptor shares the program's socket: listening on it is the
	// program's listen.
	if err := unix.Listen(fd, int(int32(c.arg(1)))); err != nil {
		unix.Close(fd)
		c.fail(errnoOf(err, unix.EINVAL))
		return
	}
	unix.Close(fd)
	forward := bound
	if bound.Addr().IsUnspecified() {
		if bound.Addr().Is6() && v6only == 1 {
			forward = netip.AddrPortFrom(netip.IPv6Loopback(), port)
		} else {
			forward = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		}
	}
	remotePort := port
	if p, ok := opts.PortMapping[port]; ok {
		remotePort = p
	}
	in.mu.Lock()
	in.wanted[port] = wantedPort{remote: remotePort, forward: forward}
	in.listeners[cookie] = port
	in.mu.Unlock()
	in.watch.Do(in.watchCloses)
	c.async(func(c *call) {
		if !in.subscribe(port, remotePort, forward) {
			// The session is ending: the program must not serve on a
			// port whose traffic another session holds.
			c.fail(unix.EADDRINUSE)
			return
		}
		c.ret(0)
	})
}

// subscribe asks the agent for the target's port; a port another session
// holds is handled as IncomingOptions.OnConflict says. It reports false
// when the session is to end (onConflict: abort).
func (in *incoming) subscribe(local, remote uint16, forward netip.AddrPort) bool {
	opts := in.s.cfg.Incoming
	ctx, cancel := context.WithTimeout(in.s.ctx, subscribeTimeout)
	defer cancel()
	spec := wire.Subscribe{Port: remote, Mode: opts.Mode, Filter: opts.Filter}
	client := in.s.agent()
	sub, err := client.Subscribe(ctx, spec, in.forwarder(forward))
	override := isConflict(err) && opts.OnConflict == config.ConflictOverride && wire.HasCapability(client.Welcome().Capabilities, wire.CapOperator)
	if override {
		// The operator checks that this user may take the port, moves the
		// lock and tells its holder.
		spec.Override = true
		sub, err = client.Subscribe(ctx, spec, in.forwarder(forward))
	}
	if err != nil {
		return in.refused(local, remote, err, override)
	}
	in.mu.Lock()
	if _, ok := in.wanted[local]; !ok {
		// The program closed the listener while this was subscribing.
		in.mu.Unlock()
		sub.Close(ctx)
		return true
	}
	in.subs[local] = sub
	in.mu.Unlock()
	what := "mirroring"
	if opts.Mode == wire.ModeSteal {
		what = "stealing"
	}
	filter := ""
	if opts.Filter != nil {
		filter = " where " + opts.Filter.String()
	}
	msg := fmt.Sprintf("%s port %d of the target%s to %s", what, remote, filter, forward)
	if override {
		msg += " (taken from its holder: onConflict override)"
	}
	in.s.warnf("%s", msg)
	in.s.stats.remote("listen")
	in.s.emit(Event{Kind: daemon.EventSubscribed, Message: msg, LocalPort: local, RemotePort: remote, Mode: opts.Mode, Filter: opts.Filter})
	return true
}

// refused tells the user why the port could not be had and, for a
// conflict under onConflict abort, or an override the operator refused
// (the user lacks the RBAC permission), ends the session.
func (in *incoming) refused(local, remote uint16, err error, triedOverride bool) bool {
	if in.s.ctx.Err() != nil {
		// The session is ending (an aborting conflict, the user's stop):
		// a subscription cut short by it is no news, and reporting it
		// would bury the reason the session ended.
		return false
	}
	opts := in.s.cfg.Incoming
	msg := fmt.Sprintf("cannot %s port %d of the target for the program's port %d: %v", opts.Mode, remote, local, err)
	abort := triedOverride
	if triedOverride && !isConflict(err) {
		msg = fmt.Sprintf("the operator refused to let this session take port %d of the target from its holder (onConflict: override): %v", remote, err)
	} else if isConflict(err) {
		switch opts.OnConflict {
		case config.ConflictContinue:
			msg += fmt.Sprintf("; continuing without port %d (onConflict: continue): your program listens locally but gets none of the target's traffic there", remote)
		case config.ConflictOverride:
			if !wire.HasCapability(in.s.agent().Welcome().Capabilities, wire.CapOperator) {
				msg += "; onConflict override needs the cluster's remocal operator, and this session reaches the agent directly"
			}
			abort = true
		default:
			abort = true
		}
	}
	if abort {
		cerr := &ConflictError{LocalPort: local, RemotePort: remote, Holder: holderOf(err), Err: err}
		msg += "; ending the session (" + cerr.advice() + ")"
		// The session's end reports cerr to the user; the event carries
		// the message for the daemon.
		defer in.s.abort(cerr)
	} else {
		in.s.warnf("%s", msg)
	}
	in.s.emit(Event{Kind: daemon.EventSubscribeFailed, Message: msg, LocalPort: local, RemotePort: remote,
		Mode: opts.Mode, Filter: opts.Filter, Err: err, Holder: holderOf(err)})
	return !abort
}

// forwarder delivers to the program's listener and tells the supervisor
// each delivery's origin (see peer.go).
func (in *incoming) forwarder(forward netip.AddrPort) *agentclient.Forwarder {
	return agentclient.ForwardTo(forward.String()).WithOrigin(in.s.origins.add)
}

func isConflict(err error) bool { return errors.Is(err, &wire.Error{Code: wire.CodeConflict}) }

// resubscribe asks a new agent connection for every wanted port; the old
// connection's subscriptions ended with it.
func (in *incoming) resubscribe() {
	in.mu.Lock()
	wanted := maps.Clone(in.wanted)
	in.subs = map[uint16]*agentclient.Subscription{}
	in.mu.Unlock()
	for local, w := range wanted {
		in.subscribe(local, w.remote, w.forward)
	}
}

// close unsubscribes everything; the client may already be gone.
func (in *incoming) close() {
	in.mu.Lock()
	subs := in.subs
	in.subs = map[uint16]*agentclient.Subscription{}
	in.wanted = map[uint16]wantedPort{}
	in.listeners = map[uint64]uint16{}
	for _, sub := range subs {
		// Under the lock, so that delivered() counts each subscription
		// either live or ended, never both or neither.
		in.s.stats.delivered.Add(sub.Deliveries.Load())
	}
	in.mu.Unlock()
	for _, sub := range subs {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		sub.Close(ctx)
		cancel()
	}
}
