package target

import (
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// IDs are a user, a group and supplementary groups, as the kernel judges
// file access by them.
type IDs struct {
	UID    uint32
	GID    uint32
	Groups []uint32
}

// fsCaps are the capabilities the kernel drops from a thread's effective
// set when its filesystem UID changes from 0 to another (capabilities(7)):
// the ones that bypass file permission checks.
var fsCaps = []int{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_DAC_READ_SEARCH, unix.CAP_FOWNER,
	unix.CAP_FSETID, unix.CAP_LINUX_IMMUTABLE, unix.CAP_MAC_OVERRIDE, unix.CAP_MKNOD,
}

// As runs fn so that the kernel judges every path it walks, and every file it
// opens, stats or checks with access(2) and AT_EACCESS, as it would for ids:
// search permission on each parent, read permission on what is opened, group
// permissions through ids' groups.
//
// For uid 0 fn runs as the caller: the agent is root too. Otherwise fn runs
// on an OS thread locked to it that takes on ids as its filesystem IDs and
// groups, and loses the capabilities that bypass permission checks. The
// changes are per thread (raw setfsuid, setfsgid, setgroups and capset, not
// the runtime's process-wide calls, which would change every thread). After
// fn the thread gets its own credentials back and is handed back to the
// runtime only if they check out exactly; otherwise it stays locked and
// exits with the goroutine, so no other goroutine ever runs with the
// target's credentials or half of them. (Threads are not discarded every
// time: the parent-death signal of a child fires when the thread that
// started it exits, and any thread may have started one.)
//
// The error is only that the thread could not take on ids; fn then does not
// run at all, never with the agent's credentials. Descriptors fn opens stay
// usable anywhere after it returns.
func As(ids IDs, fn func()) error {
	if ids.UID == 0 {
		fn()
		return nil
	}
	done := make(chan error, 1)
	go func() {
		// Deliberately no UnlockOSThread unless restore succeeds.
		runtime.LockOSThread()
		own, err := current()
		if err != nil {
			done <- err
			return
		}
		if err := assume(ids); err != nil {
			done <- err
			return
		}
		fn()
		if restore(own) == nil {
			runtime.UnlockOSThread()
		}
		done <- nil
	}()
	return <-done
}

// threadCreds are a thread's filesystem IDs, groups and capabilities.
type threadCreds struct {
	fsuid, fsgid uint32
	groups       []uint32
	caps         [2]unix.CapUserData
}

var capHeader = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3} // Pid 0: this thread

// current reads the calling thread's credentials.
func current() (threadCreds, error) {
	var c threadCreds
	// setfsuid and setfsgid with an invalid ID (-1) change nothing and
	// return the current one.
	uid, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0)
	gid, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0)
	c.fsuid, c.fsgid = uint32(uid), uint32(gid)
	var err error
	if c.groups, err = groups(); err != nil {
		return c, err
	}
	hdr := capHeader
	if err := unix.Capget(&hdr, &c.caps[0]); err != nil {
		return c, fmt.Errorf("read the thread's capabilities: %w", err)
	}
	return c, nil
}

func groups() ([]uint32, error) {
	for {
		n, _, errno := unix.RawSyscall(unix.SYS_GETGROUPS, 0, 0, 0)
		if errno != 0 {
			return nil, fmt.Errorf("read the thread's groups: %w", errno)
		}
		g := make([]uint32, n+1)
		m, _, errno := unix.RawSyscall(unix.SYS_GETGROUPS, uintptr(len(g)), uintptr(unsafe.Pointer(&g[0])), 0)
		if errno == unix.EINVAL {
			continue // they grew meanwhile
		}
		if errno != 0 {
			return nil, fmt.Errorf("read the thread's groups: %w", errno)
		}
		return g[:m], nil
	}
}

func setGroups(g []uint32) error {
	var p unsafe.Pointer
	if len(g) > 0 {
		p = unsafe.Pointer(&g[0])
	}
	_, _, errno := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(g)), uintptr(p), 0)
	runtime.KeepAlive(g)
	if errno != 0 {
		return errno
	}
	return nil
}

// setFSIDs sets the calling thread's filesystem IDs and checks they took:
// setfsuid and setfsgid report no errors.
func setFSIDs(uid, gid uint32) error {
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(gid), 0, 0)
	if got, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0); uint32(got) != gid {
		return fmt.Errorf("set the thread's filesystem gid to %d: it stayed %d (the agent needs CAP_SETGID)", gid, uint32(got))
	}
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0)
	if got, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0); uint32(got) != uid {
		return fmt.Errorf("set the thread's filesystem uid to %d: it stayed %d (the agent needs CAP_SETUID)", uid, uint32(got))
	}
	return nil
}

// assume switches the calling, locked thread to ids. On error the thread
// may be half switched and must be discarded.
func assume(ids IDs) error {
	if err := setGroups(ids.Groups); err != nil {
		return fmt.Errorf("take on the target's groups %v (the agent needs CAP_SETGID): %w", ids.Groups, err)
	}
	if err := setFSIDs(ids.UID, ids.GID); err != nil {
		return fmt.Errorf("take on the target's IDs: %w", err)
	}
	// The switch from fsuid 0 has already made the kernel drop fsCaps,
	// unless SECBIT_NO_SETUID_FIXUP is set; drop them anyway, and check.
	hdr := capHeader
	var caps [2]unix.CapUserData
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		return fmt.Errorf("read the thread's capabilities: %w", err)
	}
	for _, c := range fsCaps {
		caps[c/32].Effective &^= 1 << (c % 32)
	}
	if err := unix.Capset(&hdr, &caps[0]); err != nil {
		return fmt.Errorf("drop the capabilities that bypass file permissions: %w", err)
	}
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		return fmt.Errorf("read the thread's capabilities: %w", err)
	}
	for _, c := range fsCaps {
		if caps[c/32].Effective&(1<<(c%32)) != 0 {
			return fmt.Errorf("capability %d is still effective after dropping it", c)
		}
	}
	return nil
}

// restore gives the calling thread back its own credentials and checks
// they are exactly what they were.
func restore(own threadCreds) error {
	// Back to fsuid 0 the kernel makes the permitted fsCaps effective
	// again; capset then restores exactly what was effective.
	if err := setFSIDs(own.fsuid, own.fsgid); err != nil {
		return err
	}
	hdr := capHeader
	caps := own.caps
	if err := unix.Capset(&hdr, &caps[0]); err != nil {
		return err
	}
	if err := setGroups(own.groups); err != nil {
		return err
	}
	now, err := current()
	if err != nil {
		return err
	}
	if now.fsuid != own.fsuid || now.fsgid != own.fsgid || now.caps != own.caps || !slices.Equal(now.groups, own.groups) {
		return fmt.Errorf("the thread's credentials did not come back")
	}
	return nil
}
