// Package netns runs work inside another network namespace.
//
// Network namespaces are per OS thread on Linux, while Go schedules goroutines
// over many threads. Work that must happen inside a namespace therefore runs on
// a fresh goroutine locked to its thread; the thread switches in, does the work
// and switches back. If switching back fails the goroutine exits while still
// locked, which makes the Go runtime discard the thread instead of letting a
// namespace-polluted thread run unrelated goroutines.
//
// Sockets keep the namespace they were created in, so a listener or connection
// made inside stays there after the thread has switched back.
package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// NS is an open reference to a network namespace. Holding it keeps the
// namespace alive even if every process in it exits.
type NS struct {
	file *os.File
}

// Open opens a namespace by path, such as /proc/PID/ns/net or
// /var/run/netns/NAME.
func Open(path string) (*NS, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat network namespace %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC {
		f.Close()
		return nil, fmt.Errorf("%s is not a namespace file (filesystem type %#x)", path, st.Type)
	}
	return &NS{file: f}, nil
}

// OfPID opens the network namespace of a process.
func OfPID(pid int) (*NS, error) {
	return Open(fmt.Sprintf("/proc/%d/ns/net", pid))
}

// Path returns the path the namespace was opened from.
func (n *NS) Path() string { return n.file.Name() }

// Fd returns the descriptor of the namespace file. It stays valid until Close.
func (n *NS) Fd() int { return int(n.file.Fd()) }

// Close releases the reference.
func (n *NS) Close() error { return n.file.Close() }

// ID returns the namespace's inode number, which identifies it system-wide.
func (n *NS) ID() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(n.Fd(), &st); err != nil {
		return 0, fmt.Errorf("stat namespace: %w", err)
	}
	return st.Ino, nil
}

// Do runs fn on an OS thread that has entered the namespace.
func (n *NS) Do(fn func() error) error {
	return Enter(n.file, unix.CLONE_NEWNET, fn)
}

// Enter runs fn on an OS thread that has joined the namespace nsFile of type
// nstype (CLONE_NEWNET, CLONE_NEWUTS, ...). Only namespace types that a
// thread may join on its own work here; mount and user namespaces need a
// single-threaded process.
func Enter(nsFile *os.File, nstype int, fn func() error) error {
	kind, ok := selfPaths[nstype]
	if !ok {
		return fmt.Errorf("joining namespace type %#x from a multi-threaded process is not supported", nstype)
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread on failure paths: see the package doc.
		orig, err := os.Open("/proc/thread-self/ns/" + kind)
		if err != nil {
			done <- fmt.Errorf("open current %s namespace: %w", kind, err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(nsFile.Fd()), nstype); err != nil {
			done <- fmt.Errorf("enter %s namespace %s: %w", kind, nsFile.Name(), err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), nstype); err != nil {
			done <- errors.Join(fnErr, fmt.Errorf("leave %s namespace %s: %w", kind, nsFile.Name(), err))
			return
		}
		runtime.UnlockOSThread()
		done <- fnErr
	}()
	return <-done
}

var selfPaths = map[int]string{
	unix.CLONE_NEWNET: "net",
	unix.CLONE_NEWUTS: "uts",
	unix.CLONE_NEWIPC: "ipc",
}

// Listen creates a stream listener inside the namespace.
func (n *NS) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() error {
		var err error
		l, err = (&net.ListenConfig{}).Listen(ctx, network, address)
		return err
	})
	return l, err
}

// ListenPacket creates a packet socket inside the namespace.
func (n *NS) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := n.Do(func() error {
		var err error
		c, err = (&net.ListenConfig{}).ListenPacket(ctx, network, address)
		return err
	})
	return c, err
}

// DialContext dials from inside the namespace. The address must be numeric:
// name resolution would consult this process's resolver configuration, not
// the namespace owner's.
func (n *NS) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d := net.Dialer{Resolver: noResolver}
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// noResolver refuses name lookups so that a hostname passed to DialContext
// fails loudly instead of being resolved with the wrong configuration.
var noResolver = &net.Resolver{
	PreferGo: true,
	Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		return nil, errors.New("name resolution is not available inside a foreign network namespace; pass an IP address")
	},
}
