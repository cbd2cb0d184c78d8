package seccomp

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Data is struct seccomp_data: the system call as the filter saw it.
type Data struct {
	Nr                 int32
	Arch               uint32
	InstructionPointer uint64
	Args               [6]uint64
}

// Notif is struct seccomp_notif. Pid is the thread ID of the caller.
type Notif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  Data
}

type notifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

type notifAddFD struct {
	ID         uint64
	Flags      uint32
	SrcFD      uint32
	NewFD      uint32
	NewFDFlags uint32
}

// Listener is a seccomp user-notification file descriptor.
type Listener struct {
	file *os.File
	fd   uintptr // cached: os.File.Fd is not free, and every ioctl needs it
}

// NewListener wraps a listener descriptor, such as one received from a
// launched process.
func NewListener(fd int) *Listener {
	f := os.NewFile(uintptr(fd), "seccomp-listener")
	return &Listener{file: f, fd: f.Fd()}
}

// Fd returns the descriptor; valid until Close.
func (l *Listener) Fd() int { return int(l.fd) }

// File returns the listener as a file, to pass it to another process.
func (l *Listener) File() *os.File { return l.file }

// Close closes the listener. Once every copy is closed, notified system
// calls of the filtered processes fail with ENOSYS.
func (l *Listener) Close() error { return l.file.Close() }

// ioctl issues an ioctl that never blocks (respond, check validity, set
// flags): RawSyscall spares the scheduler bookkeeping of a blocking call,
// which is measurable at one call per intercepted system call.
func (l *Listener) ioctl(req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.RawSyscall(unix.SYS_IOCTL, l.fd, req, uintptr(arg))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// Receive blocks until a notification arrives. It returns ENOENT if the
// notifying thread died before it could be received, and EINTR if a signal
// interrupted the wait: that is how a supervisor wakes its loop to stop.
func (l *Listener) Receive(n *Notif) error {
	*n = Notif{}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, l.fd, unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(n)))
	if errno != 0 {
		return errno
	}
	return nil
}

// Continue lets the system call run as if it had not been intercepted.
//
// The kernel runs the call with the caller's arguments as they are in
// memory now; that is safe here because the supervisor only ever lets calls
// continue whose outcome it did not need to control.
func (l *Listener) Continue(id uint64) error {
	return l.respond(notifResp{ID: id, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE})
}

// Return completes the system call with val.
func (l *Listener) Return(id uint64, val int64) error {
	return l.respond(notifResp{ID: id, Val: val})
}

// Fail completes the system call with -errno.
func (l *Listener) Fail(id uint64, errno unix.Errno) error {
	return l.respond(notifResp{ID: id, Error: -int32(errno)})
}

func (l *Listener) respond(r notifResp) error {
	err := l.ioctl(unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&r))
	if errors.Is(err, unix.ENOENT) {
		return ErrGone
	}
	return err
}

// ErrGone means the notifying thread died or the system call was
// interrupted; there is nothing left to answer.
var ErrGone = errors.New("seccomp notification is no longer valid")

// Valid reports whether the notification is still pending. Anything read
// from the caller's memory is only trustworthy if the notification is still
// valid afterwards: otherwise the thread may have died and its ID been
// reused by another process.
func (l *Listener) Valid(id uint64) bool {
	return l.ioctl(unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id)) == nil
}

// AddFDAndReturn installs srcfd into the caller's descriptor table and
// completes the system call with the new descriptor number, atomically
// (SECCOMP_ADDFD_FLAG_SEND, Linux 5.14). cloexec sets O_CLOEXEC on it.
func (l *Listener) AddFDAndReturn(id uint64, srcfd int, cloexec bool) (int, error) {
	req := notifAddFD{ID: id, Flags: unix.SECCOMP_ADDFD_FLAG_SEND, SrcFD: uint32(srcfd)}
	if cloexec {
		req.NewFDFlags = unix.O_CLOEXEC
	}
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, l.fd, unix.SECCOMP_IOCTL_NOTIF_ADDFD, uintptr(unsafe.Pointer(&req)))
	if errno != 0 {
		if errno == unix.ENOENT {
			return -1, ErrGone
		}
		return -1, fmt.Errorf("add descriptor to the supervised process: %w", errno)
	}
	return int(r), nil
}

// ReplaceFD installs srcfd into the caller's descriptor table as
// descriptor newfd, closing what newfd was, as dup2 would
// (SECCOMP_ADDFD_FLAG_SETFD, Linux 5.9); the call stays pending. cloexec
// sets O_CLOEXEC on it.
func (l *Listener) ReplaceFD(id uint64, srcfd, newfd int, cloexec bool) error {
	req := notifAddFD{ID: id, Flags: unix.SECCOMP_ADDFD_FLAG_SETFD, SrcFD: uint32(srcfd), NewFD: uint32(newfd)}
	if cloexec {
		req.NewFDFlags = unix.O_CLOEXEC
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, l.fd, unix.SECCOMP_IOCTL_NOTIF_ADDFD, uintptr(unsafe.Pointer(&req)))
	switch errno {
	case 0:
		return nil
	case unix.ENOENT:
		return ErrGone
	}
	return fmt.Errorf("replace descriptor %d of the supervised process: %w", newfd, errno)
}

// SetSyncWakeup asks the kernel to wake the supervisor on the notifying
// thread's CPU and switch to it directly (Linux 6.6), which roughly halves
// the cost of a round trip. It is an optimisation: older kernels refuse it
// and everything still works.
func (l *Listener) SetSyncWakeup() error {
	flags := uint64(unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
	return l.ioctl(unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS, unsafe.Pointer(&flags))
}
