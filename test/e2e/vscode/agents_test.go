package vscode_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// agent is a local remocal agent process, as GET /agents reports it.
type agent struct {
	PID     int      `json:"pid"`
	Cmdline []string `json:"cmdline"`
}

// agentsServing lists the processes running `remocal agent --target-pid
// pid ...`: a session on a local process starts such an agent detached (its
// own session, so it outlives the session host) and the next session
// reuses it while it is warm. Read from /proc, since nothing else knows
// about a detached agent.
func agentsServing(pid int) ([]agent, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	want := strconv.Itoa(pid)
	agents := []agent{}
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		// A process may exit between the listing and the read: skip it.
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || len(b) > 1<<16 {
			continue
		}
		args := splitCmdline(b)
		if len(args) < 4 || args[1] != "agent" {
			continue
		}
		if i := slices.Index(args, "--target-pid"); i > 0 && i+1 < len(args) && args[i+1] == want {
			agents = append(agents, agent{PID: p, Cmdline: args})
		}
	}
	return agents, nil
}

// splitCmdline splits a NUL-separated /proc cmdline.
func splitCmdline(b []byte) []string {
	var out []string
	for _, f := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
		out = append(out, string(f))
	}
	return out
}
