package supervisor

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"

	"github.com/remocal/remocal/interpose/internal/seccomp"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/wire"
)

// Event is what the supervisor tells the user on Stderr, as data, for
// programs (the daemon) that show it elsewhere.
type Event struct {
	Kind daemon.EventKind
	// Message is the text written to Stderr, without the "remocal: " prefix.
	Message string
	// LocalPort is where the program listens, RemotePort the target's port
	// (subscription events).
	LocalPort, RemotePort uint16
	Mode                  wire.Mode
	Filter                *wire.HTTPFilter
	// Err is why a subscription failed (usually a *wire.Error from the
	// agent) or why the agent connection ended.
	Err error
	// Holder is who holds the port when a subscription was refused for a
	// conflict, or who took it (Taken: an operator's subscription.lost
	// event, another user's override).
	Holder *wire.Holder
	Taken  bool
}

// emit passes ev to Config.OnEvent, if any.
func (s *Supervisor) emit(ev Event) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
}

// ConflictError ends a session whose onConflict is abort: a port the
// program listens on is held by another session.
type ConflictError struct {
	LocalPort, RemotePort uint16
	// Holder is who holds it (from the agent's or operator's conflict
	// error), if said.
	Holder *wire.Holder
	// Err is the refusal.
	Err error
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("port %d of the target (the program's port %d) is held by another session: %v (%s)",
		e.RemotePort, e.LocalPort, e.Err, e.advice())
}

func (e *ConflictError) Unwrap() error { return e.Err }

func (e *ConflictError) advice() string {
	return `onConflict: abort; set network.incoming.onConflict to "continue" to run without the port, or to "override" to take it if your RBAC allows`
}

// abort tells the session to end.
func (s *Supervisor) abort(err error) {
	if s.cfg.OnAbort != nil {
		s.cfg.OnAbort(err)
	}
}

// holderOf returns the holder named by a conflict error.
func holderOf(err error) *wire.Holder {
	var we *wire.Error
	if errors.As(err, &we) && we.Code == wire.CodeConflict {
		return we.Holder
	}
	return nil
}

// SubscriptionInfo describes a live subscription.
type SubscriptionInfo struct {
	// ID is the agent's name for it.
	ID                    string
	LocalPort, RemotePort uint16
	Mode                  wire.Mode
	Filter                *wire.HTTPFilter
	// Deliveries counts connections and requests received so far.
	Deliveries uint64
}

// Subscriptions lists the supervisor's live subscriptions by local port.
func (s *Supervisor) Subscriptions() []SubscriptionInfo {
	if s.incoming == nil {
		return nil
	}
	in := s.incoming
	in.mu.Lock()
	out := make([]SubscriptionInfo, 0, len(in.subs))
	for local, sub := range in.subs {
		spec := sub.Spec()
		out = append(out, SubscriptionInfo{ID: sub.ID(), LocalPort: local, RemotePort: spec.Port, Mode: spec.Mode,
			Filter: spec.Filter, Deliveries: sub.Deliveries.Load()})
	}
	in.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].LocalPort < out[j].LocalPort })
	return out
}

// delivered counts what every subscription, live or ended, received.
func (s *Supervisor) delivered() uint64 {
	if s.incoming == nil {
		return s.stats.delivered.Load()
	}
	in := s.incoming
	in.mu.Lock()
	defer in.mu.Unlock()
	n := s.stats.delivered.Load()
	for _, sub := range in.subs {
		n += sub.Deliveries.Load()
	}
	return n
}

// ProcessInfo is a running process the supervisor has seen.
type ProcessInfo struct {
	PID int
	// Exe is its executable.
	Exe string
	// Local: its system calls are not intercepted (a build tool, a
	// debugger, the transparent process).
	Local bool
}

// Processes lists the running processes whose system calls reached the
// supervisor, by PID. Threads that have exited are forgotten on the way.
func (s *Supervisor) Processes() []ProcessInfo {
	s.procMu.Lock()
	tids := make(map[int]bool, len(s.procs))
	for tid, info := range s.procs {
		tids[tid] = info.local
	}
	s.procMu.Unlock()
	byPID := map[int]*ProcessInfo{}
	var gone []int
	for tid, local := range tids {
		tgid, err := seccomp.Tgid(tid)
		if err != nil {
			gone = append(gone, tid)
			continue
		}
		if p, ok := byPID[tgid]; ok {
			p.Local = p.Local || local
			continue
		}
		exe, err := os.Readlink("/proc/" + strconv.Itoa(tgid) + "/exe")
		if err != nil {
			continue // a zombie: it has exited, its parent has not reaped it yet
		}
		byPID[tgid] = &ProcessInfo{PID: tgid, Exe: exe, Local: local}
	}
	if len(gone) > 0 {
		s.procMu.Lock()
		for _, tid := range gone {
			if _, err := os.Stat("/proc/" + strconv.Itoa(tid)); err != nil {
				delete(s.procs, tid)
			}
		}
		s.procMu.Unlock()
	}
	out := make([]ProcessInfo, 0, len(byPID))
	for _, p := range byPID {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}
