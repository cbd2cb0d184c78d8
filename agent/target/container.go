package target

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Container locates a container's main process from the agent's side of a
// node: the agent runs with the host's PID namespace and finds the process
// whose cgroup names the container ID that the pod's status reports. This
// works for any container runtime (containerd, CRI-O, docker) and cgroup
// layout (v1, v2, systemd or cgroupfs drivers), because every one of them
// puts the container ID in the cgroup path.
type Container struct {
	// ID is the container ID, with or without a "containerd://" style
	// prefix.
	ID string
	// Proc is /proc (a test seam for fixtures).
	Proc string
	// Name is the user-facing reference, e.g. "deployment/api/container/app".
	Name string
}

// Locate finds the container's first process and opens it.
func (c Container) Locate(ctx context.Context) (*Process, error) {
	pid, err := c.findPID()
	if err != nil {
		return nil, err
	}
	name := c.Name
	if name == "" {
		name = "container/" + shortID(c.ID)
	}
	return Open(pid, name)
}

func bareID(id string) string {
	if i := strings.Index(id, "://"); i >= 0 {
		return id[i+3:]
	}
	return id
}

func shortID(id string) string {
	id = bareID(id)
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// findPID returns the container's init process: the lowest PID among the
// processes in the container's cgroup whose parent is outside it.
func (c Container) findPID() (int, error) {
	id := bareID(c.ID)
	if len(id) < 12 {
		return 0, fmt.Errorf("container ID %q is too short to identify a container", c.ID)
	}
	proc := c.Proc
	if proc == "" {
		proc = "/proc"
	}
	entries, err := os.ReadDir(proc)
	if err != nil {
		return 0, err
	}
	members := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if inCgroupOf(filepath.Join(proc, e.Name(), "cgroup"), id) {
			members[pid] = true
		}
	}
	best := 0
	for pid := range members {
		if members[parentPID(proc, pid)] {
			continue
		}
		if best == 0 || pid < best {
			best = pid
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("no process of container %s on this node: the agent must run on the pod's node with hostPID (is the container running?)", shortID(id))
	}
	return best, nil
}

func inCgroupOf(path, id string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), id) {
			return true
		}
	}
	return false
}

func parentPID(proc string, pid int) int {
	data, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}
