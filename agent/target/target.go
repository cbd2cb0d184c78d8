// Package target finds the process an agent serves and gives access to its
// namespaces, root filesystem, environment and lifetime.
//
// Locating a target is pluggable: a local PID, a Kubernetes container (found
// on its node by its container ID in /proc/*/cgroup), or no process at all
// (targetless). Whatever the locator, the result is a Process, and
// everything the agent does goes through it.
package target

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/netns"
)

// Locator finds a target's process.
type Locator interface {
	// Locate returns the process to serve. Name is the user-facing target
	// reference, such as "pid/1234".
	Locate(ctx context.Context) (*Process, error)
}

// PID locates a local process by its ID.
type PID int

// Locate opens the process.
func (p PID) Locate(ctx context.Context) (*Process, error) {
	return Open(int(p), fmt.Sprintf("pid/%d", int(p)))
}

// Process is a located target. It holds a pidfd so that a recycled PID can
// never be mistaken for the target, and the target's root directory and
// network namespace so they stay usable while the agent runs.
type Process struct {
	name  string
	pid   int
	pidfd *os.File
	root  *os.File
	net   *netns.NS

	done      chan struct{}
	closeOnce sync.Once
}

// Open opens the process pid and names it name.
func Open(pid int, name string) (*Process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("invalid target pid %d", pid)
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("target process %d does not exist: %w", pid, err)
		}
		return nil, fmt.Errorf("open target process %d: %w", pid, err)
	}
	p := &Process{name: name, pid: pid, pidfd: os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid)), done: make(chan struct{})}
	// O_PATH on the magic link pins the target's root as seen from its own
	// mount namespace, including bind mounts private to it.
	rootFd, err := unix.Open(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		p.pidfd.Close()
		return nil, fmt.Errorf("open root directory of target process %d (the agent needs CAP_SYS_PTRACE or the same user): %w", pid, err)
	}
	p.root = os.NewFile(uintptr(rootFd), fmt.Sprintf("/proc/%d/root", pid))
	p.net, err = netns.OfPID(pid)
	if err != nil {
		p.root.Close()
		p.pidfd.Close()
		return nil, err
	}
	// The PID might have been recycled between pidfd_open and the opens
	// above. It is recycled only after the process exited, which makes
	// its pidfd readable: a pidfd not readable now proves the opens above
	// named our process. (Not a signal 0 through the pidfd: the kernel
	// checks kill permission for it, which another user's process denies
	// an agent without CAP_KILL.)
	if n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0); err != nil || n > 0 {
		p.Close()
		if err == nil {
			err = unix.ESRCH
		}
		return nil, fmt.Errorf("target process %d exited while being opened: %w", pid, err)
	}
	go p.watch()
	return p, nil
}

// watch closes done when the process exits. A pidfd becomes readable at
// exit; the runtime poller waits for that without holding a thread.
func (p *Process) watch() {
	rc, err := p.pidfd.SyscallConn()
	if err != nil {
		return
	}
	exited := false
	err = rc.Read(func(fd uintptr) bool {
		n, _ := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		exited = n > 0
		return exited
	})
	if err == nil && exited {
		close(p.done)
	}
}

// Name is the user-facing reference of the target.
func (p *Process) Name() string { return p.name }

// PID is the process ID in the agent's PID namespace.
func (p *Process) PID() int { return p.pid }

// NetNS is the target's network namespace.
func (p *Process) NetNS() *netns.NS { return p.net }

// Root is an O_PATH descriptor of the target's root directory; resolve paths
// under it with openat2 and RESOLVE_IN_ROOT.
func (p *Process) Root() *os.File { return p.root }

// Done is closed when the target process exits.
func (p *Process) Done() <-chan struct{} { return p.done }

// Close releases the handles. The process itself is not touched.
func (p *Process) Close() error {
	p.closeOnce.Do(func() {
		p.pidfd.Close() // ends watch
		p.root.Close()
		p.net.Close()
	})
	return nil
}

// Environ returns the environment the process was started with.
func (p *Process) Environ() (map[string]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.pid))
	if err != nil {
		return nil, fmt.Errorf("read environment of target process %d: %w", p.pid, err)
	}
	if err := p.alive(); err != nil {
		return nil, err
	}
	env := make(map[string]string)
	for _, kv := range bytes.Split(data, []byte{0}) {
		if len(kv) == 0 {
			continue
		}
		k, v, _ := strings.Cut(string(kv), "=")
		if _, dup := env[k]; !dup { // getenv returns the first of duplicates
			env[k] = v
		}
	}
	return env, nil
}

// Hostname returns the target's hostname from its UTS namespace, which is
// what uname(2) and gethostname(3) return inside it.
func (p *Process) Hostname() (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/uts", p.pid))
	if err != nil {
		return "", fmt.Errorf("open UTS namespace of target process %d: %w", p.pid, err)
	}
	defer f.Close()
	var uts unix.Utsname
	if err := netns.Enter(f, unix.CLONE_NEWUTS, func() error { return unix.Uname(&uts) }); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(uts.Nodename[:]), nil
}

// Credentials are the target's IDs as /proc/PID/status shows them in the
// agent's user namespace.
type Credentials struct {
	// UID and GID are the real IDs, which access(2) checks.
	UID uint32
	GID uint32
	// FSUID and FSGID are the filesystem IDs, which opening, stat and the
	// walk through every parent directory check.
	FSUID  uint32
	FSGID  uint32
	Groups []uint32
}

// Real returns the IDs access(2) judges by.
func (c Credentials) Real() IDs { return IDs{UID: c.UID, GID: c.GID, Groups: c.Groups} }

// FS returns the IDs the target's opens and path walks are judged by.
func (c Credentials) FS() IDs { return IDs{UID: c.FSUID, GID: c.FSGID, Groups: c.Groups} }

// Credentials reads the process's current IDs; a process may change them
// while it runs, so they are read for each use.
func (p *Process) Credentials() (Credentials, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return Credentials{}, fmt.Errorf("read credentials of target process %d: %w", p.pid, err)
	}
	if err := p.alive(); err != nil {
		return Credentials{}, err
	}
	return parseCredentials(string(data))
}

// parseCredentials reads the Uid, Gid (real, effective, saved, filesystem)
// and Groups lines of /proc/PID/status.
func parseCredentials(status string) (Credentials, error) {
	var c Credentials
	seen := 0
	for _, line := range strings.Split(status, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		switch key {
		case "Uid", "Gid":
			if len(fields) != 4 {
				return Credentials{}, fmt.Errorf("unexpected %s line in /proc status: %q", key, line)
			}
			realID, err1 := parseID(fields[0])
			fsID, err2 := parseID(fields[3])
			if err1 != nil || err2 != nil {
				return Credentials{}, fmt.Errorf("unexpected %s line in /proc status: %q", key, line)
			}
			if key == "Uid" {
				c.UID, c.FSUID = realID, fsID
			} else {
				c.GID, c.FSGID = realID, fsID
			}
			seen++
		case "Groups":
			for _, f := range fields {
				g, err := parseID(f)
				if err != nil {
					return Credentials{}, fmt.Errorf("unexpected Groups line in /proc status: %q", line)
				}
				c.Groups = append(c.Groups, g)
			}
		}
	}
	if seen != 2 {
		return Credentials{}, fmt.Errorf("no Uid and Gid lines in /proc status")
	}
	return c, nil
}

// parseID parses an ID; an unparsable one is an error, never root.
func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

// alive guards reads of /proc/PID/... against a recycled PID.
func (p *Process) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("target process %d has exited", p.pid)
	default:
		return nil
	}
}

// Targetless is the agent's own process: its network (the pod it runs in)
// serves outgoing connections and DNS for sessions without a workload.
type Targetless struct{}

// Locate opens the agent's own process.
func (Targetless) Locate(ctx context.Context) (*Process, error) {
	return Open(os.Getpid(), "targetless")
}
