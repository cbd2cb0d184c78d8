package supervisor

import (
	"os"
	"path"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/seccomp"
)

type procInfo struct {
	local bool
}

// processIsLocal reports whether tid belongs to a process that must run
// untouched: a build tool or debugger by executable name, or the
// transparent process.
func (s *Supervisor) processIsLocal(tid int) bool {
	s.procMu.Lock()
	info, ok := s.procs[tid]
	s.procMu.Unlock()
	if ok {
		return info.local
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
	s.procs[tid] = procInfo{local: local}
	s.procMu.Unlock()
	return local
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
