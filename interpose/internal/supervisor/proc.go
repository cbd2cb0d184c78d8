package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/seccomp"
)

// procInfo is what is remembered of a thread: a thread ID alone does not
// name it, since IDs are recycled, so its start time goes with it.
type procInfo struct {
	local bool
	start uint64 // clock ticks after boot; 0 if unknown
}

// processIsLocal reports whether tid belongs to a process that must run
// untouched: a build tool or debugger by executable name, or the
// transparent process.
//
// A remembered local thread is only believed if its start time has not
// changed: otherwise its ID now names another thread, perhaps of the
// program, whose calls would escape the supervisor. A remembered
// intercepted thread is believed without that check, which costs a read
// of /proc on every notification: a recycled ID can only make a thread
// intercepted that should not be, never the other way round.
func (s *Supervisor) processIsLocal(tid int) bool {
	s.procMu.Lock()
	info, ok := s.procs[tid]
	s.procMu.Unlock()
	if ok && !info.local {
		return false
	}
	start, err := s.startTimeOf(tid)
	if err != nil {
		start = 0
	}
	if ok && start != 0 && start == info.start {
		return true
	}
	local := false
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(tid) + "/exe"); err == nil && s.cfg.Processes != nil {
		local = s.cfg.Processes.Local(exe)
	}
	if !local && s.cfg.TransparentPID != 0 {
		if tid == s.cfg.TransparentPID {
			local = true
		} else if tgid, err := seccomp.Tgid(tid); err == nil && tgid == s.cfg.TransparentPID {
			local = true
		}
	}
	s.procMu.Lock()
	if s.procs == nil {
		s.procs = map[int]procInfo{}
	}
	s.procs[tid] = procInfo{local: local, start: start}
	s.procMu.Unlock()
	return local
}

// startTimeOf returns when tid started, in clock ticks after boot.
func (s *Supervisor) startTimeOf(tid int) (uint64, error) {
	if s.startTime != nil {
		return s.startTime(tid)
	}
	return threadStartTime(tid)
}

// threadStartTime reads field 22 of /proc/TID/stat. The fields after the
// command name, which may contain spaces and parentheses, start after its
// last ')'.
func threadStartTime(tid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", tid)
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state).
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", tid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// forgetProcess drops what is known about tid: it is about to exec another
// program, which may be local where the old one was not.
func (s *Supervisor) forgetProcess(tid int) {
	s.procMu.Lock()
	delete(s.procs, tid)
	s.procMu.Unlock()
}

const atFdcwd = unix.AT_FDCWD

// absPath resolves a path argument the way the kernel would for the caller:
// relative to its working directory or to dirfd.
func absPath(tid int, dirfd int32, p string) (string, bool) {
	if path.IsAbs(p) {
		return path.Clean(p), true
	}
	var base string
	var err error
	if dirfd == atFdcwd {
		base, err = os.Readlink("/proc/" + strconv.Itoa(tid) + "/cwd")
	} else {
		base, err = os.Readlink("/proc/" + strconv.Itoa(tid) + "/fd/" + strconv.Itoa(int(dirfd)))
	}
	if err != nil || !path.IsAbs(base) {
		return "", false
	}
	return path.Join(base, p), true
}

// unsafeBytes views a fixed-size struct as bytes for writing it into the
// caller's memory.
func unsafeBytes[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}
