package seccomp

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Install sets no_new_privs and installs prog on the calling thread with a
// user-notification listener, which it returns. The caller must have locked
// its goroutine to the OS thread: the filter applies to this thread and to
// whatever it execs or forks, not to the rest of a Go process.
//
// WAIT_KILLABLE_RECV (Linux 5.19) is requested so that a signal arriving
// while a notification waits to be received does not restart the system
// call and notify it twice; on older kernels Install falls back without it,
// and the supervisor's handlers are idempotent for that case.
func Install(prog []unix.SockFilter) (*Listener, error) {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("set no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	flags := uintptr(unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
	fd, err := seccompFilter(flags, &fprog)
	if errors.Is(err, unix.EINVAL) {
		fd, err = seccompFilter(unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog)
	}
	if err != nil {
		return nil, fmt.Errorf("install seccomp filter with a notification listener (Linux 5.0+, seccomp enabled): %w", err)
	}
	return NewListener(fd), nil
}

func seccompFilter(flags uintptr, prog *unix.SockFprog) (int, error) {
	r, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(prog)))
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}
