package localenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// tools are the absolute paths of the programs the environment runs, so
// that neither the caller's PATH nor the pods' decides which ones.
type tools struct {
	ip, sh, mount, umount, cp, mkdir string
	redis, dnsmasq                   string
	// scratch is an existing directory a pod's private mount namespace
	// briefly mounts a tmpfs on while building its /etc overlay.
	scratch string
}

func findTools() (tools, error) {
	var errs []error
	find := func(name, hint string) string {
		if p, err := exec.LookPath(name); err == nil {
			if abs, err := filepath.Abs(p); err == nil {
				return abs
			}
		}
		// root's PATH usually has the sbin directories, but a test
		// runner's may not.
		for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"} {
			p := filepath.Join(d, name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return p
			}
		}
		errs = append(errs, fmt.Errorf("%s not found: %s", name, hint))
		return ""
	}
	t := tools{
		ip:      find("ip", "apt-get install iproute2"),
		sh:      find("sh", "install a POSIX shell (apt-get install dash)"),
		mount:   find("mount", "apt-get install mount"),
		umount:  find("umount", "apt-get install mount"),
		cp:      find("cp", "apt-get install coreutils"),
		mkdir:   find("mkdir", "apt-get install coreutils"),
		redis:   find("redis-server", "apt-get install redis-server"),
		dnsmasq: find("dnsmasq", "apt-get install dnsmasq-base"),
	}
	for _, d := range []string{"/dev/shm", "/mnt", "/tmp"} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			t.scratch = d
			break
		}
	}
	if t.scratch == "" {
		errs = append(errs, errors.New("none of /dev/shm, /mnt, /tmp is a directory; one is needed as a temporary mount point"))
	}
	if err := errors.Join(errs...); err != nil {
		return tools{}, fmt.Errorf("localenv: missing prerequisites:\n%w", err)
	}
	return t, nil
}

// MissingPrivileges explains why this process cannot build an environment,
// or returns "".
func MissingPrivileges() string {
	if os.Geteuid() != 0 {
		return "needs root: creating network namespaces, veth pairs and mounts requires CAP_SYS_ADMIN and CAP_NET_ADMIN (run the tests with sudo, or as root in a VM)"
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "cannot read /proc/self/status to check capabilities: " + err.Error()
	}
	for _, line := range strings.Split(string(status), "\n") {
		hex, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return "cannot parse CapEff in /proc/self/status: " + err.Error()
		}
		const capNetAdmin, capSysAdmin = 12, 21
		var missing []string
		if caps&(1<<capNetAdmin) == 0 {
			missing = append(missing, "CAP_NET_ADMIN")
		}
		if caps&(1<<capSysAdmin) == 0 {
			missing = append(missing, "CAP_SYS_ADMIN")
		}
		if len(missing) > 0 {
			return "running as root but without " + strings.Join(missing, " and ") + " (a restricted container?); network namespaces need both"
		}
		return ""
	}
	return ""
}
