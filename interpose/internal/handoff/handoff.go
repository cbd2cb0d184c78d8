// Package handoff is how a process that is about to be supervised gets its
// seccomp filter from the supervisor and hands back the notification
// listener. Both the launcher (`remocal exec`) and the LD_PRELOAD bootstrap
// library speak it, over a unix stream socket:
//
//	supervisor → process: uint32 little-endian length, then the BPF program
//	                      (struct sock_filter array, see seccomp.Encode)
//	process → supervisor: one status byte, 0 = installed, with the listener
//	                      attached as SCM_RIGHTS; or 1, then uint32 length
//	                      and a UTF-8 error message, and no descriptor
//
// The supervisor learns who is connecting from SO_PEERCRED.
package handoff

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/interpose/internal/seccomp"
)

const (
	statusInstalled = 0
	statusFailed    = 1
	maxMessage      = 4096
)

// Result is what the supervisor gets from a handoff.
type Result struct {
	Listener *seccomp.Listener
	// PID of the process that installed the filter, from SO_PEERCRED. On a
	// socketpair the kernel reports the pair's creator instead, so the
	// launcher's caller uses the PID it started.
	PID int
}

// Offer sends prog to the process at the other end of conn and waits for
// its listener.
func Offer(conn *net.UnixConn, prog []byte, timeout time.Duration) (*Result, error) {
	conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	pid, err := peerPID(conn)
	if err != nil {
		return nil, err
	}
	msg := binary.LittleEndian.AppendUint32(nil, uint32(len(prog)))
	if _, err := conn.Write(append(msg, prog...)); err != nil {
		return nil, fmt.Errorf("send the seccomp filter to process %d: %w", pid, err)
	}
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil || n != 1 {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("process %d did not report on its seccomp filter: %w", pid, err)
	}
	fds, _ := parseRights(oob[:oobn])
	if buf[0] != statusInstalled {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("process %d could not install the seccomp filter: %s", pid, readMessage(conn))
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("process %d reported success but sent %d descriptors, want 1", pid, len(fds))
	}
	return &Result{Listener: seccomp.NewListener(fds[0]), PID: pid}, nil
}

func peerPID(conn *net.UnixConn) (int, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cerr != nil {
		return 0, fmt.Errorf("identify the connecting process: %w", cerr)
	}
	return int(cred.Pid), nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err == nil {
			fds = append(fds, got...)
		}
	}
	return fds, nil
}

func readMessage(r io.Reader) string {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "(no reason given)"
	}
	n := min(binary.LittleEndian.Uint32(hdr[:]), maxMessage)
	msg := make([]byte, n)
	io.ReadFull(r, msg)
	return string(msg)
}

// Accept is the process side, for Go callers (the launcher): it reads the
// program from fd, installs it on the calling thread and sends the listener
// back. The caller must hold runtime.LockOSThread and exec right after, from
// this thread: the filter covers this thread and what it execs.
func Accept(fd int) error {
	f := os.NewFile(uintptr(fd), "handoff")
	defer f.Close()
	var hdr [4]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return fmt.Errorf("read the seccomp filter from the supervisor: %w", err)
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n == 0 || n > 8*4096 {
		return fmt.Errorf("the supervisor sent a %d byte filter", n)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(f, raw); err != nil {
		return fmt.Errorf("read the seccomp filter from the supervisor: %w", err)
	}
	prog, err := seccomp.Decode(raw)
	if err == nil {
		var l *seccomp.Listener
		if l, err = seccomp.Install(prog); err == nil {
			defer l.Close()
			rights := unix.UnixRights(l.Fd())
			// The filter notifies sendmsg, but not with this flag:
			// nobody could answer before the listener arrives.
			return unix.Sendmsg(fd, []byte{statusInstalled}, rights, nil, seccomp.HandoffSendFlag)
		}
	}
	report := append([]byte{statusFailed}, binary.LittleEndian.AppendUint32(nil, uint32(len(err.Error())))...)
	unix.Sendmsg(fd, append(report, err.Error()...), nil, nil, seccomp.HandoffSendFlag)
	return err
}
