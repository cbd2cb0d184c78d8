package supervisor

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/seccomp"
	"github.com/remocal/remocal/protocol/daemon"
)

// socketFD takes a copy of the program's descriptor in the call's first
// argument (a socket, for the socket calls). Without it the call is
// answered (continued, or failed when the program may not be inspected)
// and ok is false.
func (c *call) socketFD() (fd int, ok bool) {
	fd, err := seccomp.GetFD(c.tid, int(c.arg(0)))
	if err != nil {
		if !c.denied(err) {
			c.cont()
		}
		return -1, false
	}
	return fd, true
}

// denied handles a failure to look into the caller: process_vm_readv and
// pidfd_getfd need ptrace access, which Yama (ptrace_scope=1 allows it only
// for descendants and declared tracers), a non-dumpable program or a
// security module can refuse. Letting the call continue would quietly give
// the program this machine's files and network, so the call fails with
// EPERM instead, and the user is told once per process. It reports whether
// err was such a refusal, in which case the call is answered.
func (c *call) denied(err error) bool {
	if !errors.Is(err, unix.EPERM) {
		return false
	}
	c.answered = true
	c.fail(unix.EPERM)
	c.s.warnDenied(c.tid, err)
	return true
}

// warnDenied tells the user, once per process, that the supervisor may not
// inspect it. The warning goes out on a goroutine: denied runs on the
// notification loop, and OnEvent must not be called from there.
func (s *Supervisor) warnDenied(tid int, err error) {
	pid := tid
	if tgid, terr := seccomp.Tgid(tid); terr == nil {
		pid = tgid
	}
	s.procMu.Lock()
	if s.deniedPIDs == nil {
		s.deniedPIDs = map[int]bool{}
	}
	seen := s.deniedPIDs[pid]
	s.deniedPIDs[pid] = true
	s.procMu.Unlock()
	if seen {
		return
	}
	msg := fmt.Sprintf("cannot inspect process %d (%v): its file and network calls fail with EPERM instead of reaching "+
		"this machine's; with Yama ptrace_scope=1, start it under `remocal exec` or allow the session with PR_SET_PTRACER", pid, err)
	s.wg.Go(func() {
		s.warnf("%s", msg)
		s.emit(Event{Kind: daemon.EventWarning, Message: msg, Err: err})
	})
}
