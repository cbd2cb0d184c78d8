package seccomp

import (
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Requirements of the interposition layer, with the kernel release that
// brought each.
var requirements = []struct {
	major, minor int
	what         string
}{
	{5, 6, "pidfd_getfd and openat2"},
	{5, 14, "SECCOMP_ADDFD_FLAG_SEND (handing opened files to the program atomically)"},
}

// Check reports whether this kernel can run the interposition layer, with an
// error that names what is missing and what to do.
func Check() error {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	machine := unix.ByteSliceToString(uts.Machine[:])
	return checkSupport(release, machine, userNotifAvailable())
}

// checkSupport is Check with its inputs explicit, so every refusal can be
// tested on any kernel.
func checkSupport(release, machine string, userNotif bool) error {
	if machine != "x86_64" {
		return fmt.Errorf("remocal exec supports x86_64 Linux only; this machine is %s", machine)
	}
	major, minor, err := parseRelease(release)
	if err != nil {
		return err
	}
	for _, r := range requirements {
		if major < r.major || major == r.major && minor < r.minor {
			return fmt.Errorf("remocal exec needs Linux %d.%d or newer for %s; this kernel is %s: upgrade the kernel or run remocal on a newer machine",
				r.major, r.minor, r.what, release)
		}
	}
	if !userNotif {
		return fmt.Errorf("seccomp user notification is not available on this kernel (%s): it needs CONFIG_SECCOMP_FILTER, and a container runtime's seccomp profile may forbid the seccomp() system call; run remocal outside such a sandbox", release)
	}
	return nil
}

func parseRelease(release string) (major, minor int, err error) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0, fmt.Errorf("cannot parse kernel release %q", release)
	}
	major, err1 := strconv.Atoi(parts[0])
	minorDigits := strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
	minor, err2 := strconv.Atoi(minorDigits)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("cannot parse kernel release %q", release)
	}
	return major, minor, nil
}

// userNotifAvailable asks the kernel whether SECCOMP_RET_USER_NOTIF is a
// supported action.
func userNotifAvailable() bool {
	action := uint32(unix.SECCOMP_RET_USER_NOTIF)
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&action)))
	return errno == 0
}
