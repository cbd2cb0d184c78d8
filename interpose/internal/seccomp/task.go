package seccomp

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pidfdThread is PIDFD_THREAD (Linux 6.9): a pidfd for a thread that is not
// a thread-group leader. Notifications carry thread IDs, and Go and Java
// programs make most system calls from non-leader threads.
const pidfdThread = unix.O_EXCL

const pageSize = 4096

// ReadMemory fills buf from the thread's memory at addr.
func ReadMemory(tid int, addr uint64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: &buf[0], Len: uint64(len(buf))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := unix.ProcessVMReadv(tid, local, remote, 0)
	if err != nil {
		return fmt.Errorf("read %d bytes at %#x of thread %d: %w", len(buf), addr, tid, err)
	}
	if n != len(buf) {
		return fmt.Errorf("read %d bytes at %#x of thread %d: short read of %d", len(buf), addr, tid, n)
	}
	return nil
}

// WriteMemory writes data into the thread's memory at addr.
func WriteMemory(tid int, addr uint64, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: &data[0], Len: uint64(len(data))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(data)}}
	n, err := unix.ProcessVMWritev(tid, local, remote, 0)
	if err != nil {
		return fmt.Errorf("write %d bytes at %#x of thread %d: %w", len(data), addr, tid, err)
	}
	if n != len(data) {
		return fmt.Errorf("write %d bytes at %#x of thread %d: short write of %d", len(data), addr, tid, n)
	}
	return nil
}

// ErrNameTooLong is returned for strings without a NUL within the limit.
var ErrNameTooLong = errors.New("string longer than PATH_MAX")

// ReadString reads a NUL-terminated string of at most max bytes. It reads
// page by page: a string near the end of a mapping would make one large read
// fail.
func ReadString(tid int, addr uint64, max int) (string, error) {
	if addr == 0 {
		return "", unix.EFAULT
	}
	var out []byte
	var small [256]byte
	buf := small[:]
	for len(out) < max {
		// Most paths are short: a first small read saves copying a page.
		chunk := min(len(buf), pageSize-int(addr%pageSize))
		if err := ReadMemory(tid, addr, buf[:chunk]); err != nil {
			return "", err
		}
		if i := bytes.IndexByte(buf[:chunk], 0); i >= 0 {
			return string(append(out, buf[:i]...)), nil
		}
		out = append(out, buf[:chunk]...)
		addr += uint64(chunk)
		if len(buf) < pageSize {
			buf = make([]byte, pageSize)
		}
	}
	return "", ErrNameTooLong
}

// ReadUint32 reads a little-endian uint32 (socklen_t, ...).
func ReadUint32(tid int, addr uint64) (uint32, error) {
	var v uint32
	b := unsafe.Slice((*byte)(unsafe.Pointer(&v)), 4)
	err := ReadMemory(tid, addr, b)
	return v, err
}

// GetFD duplicates descriptor fd of thread tid into this process
// (pidfd_getfd, Linux 5.6). The duplicate shares the open file description:
// flags such as O_NONBLOCK and the socket itself are the caller's.
func GetFD(tid, fd int) (int, error) {
	pidfd, err := openPidfd(tid)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pidfd)
	dup, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return -1, fmt.Errorf("take descriptor %d of thread %d: %w", fd, tid, err)
	}
	return dup, nil
}

func openPidfd(tid int) (int, error) {
	pidfd, err := unix.PidfdOpen(tid, pidfdThread)
	if err == nil {
		return pidfd, nil
	}
	// Before Linux 6.9 only thread-group leaders have pidfds; descriptor
	// tables are per process in all but exotic clone() uses, so the
	// leader's will do.
	tgid, terr := Tgid(tid)
	if terr != nil {
		return -1, fmt.Errorf("open pidfd of thread %d: %w", tid, err)
	}
	pidfd, err = unix.PidfdOpen(tgid, 0)
	if err != nil {
		return -1, fmt.Errorf("open pidfd of process %d: %w", tgid, err)
	}
	return pidfd, nil
}

// Tgid returns the process (thread-group) ID of a thread.
func Tgid(tid int) (int, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no Tgid in /proc/%d/status", tid)
}
