package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/test/poll"
)

// daemon is a host process the harness started. Down stops it by PID after
// checking that the PID is still the same process (executable and start
// time), so a recycled PID is never signalled.
type daemon struct {
	Name      string   `json:"name"`
	PID       int      `json:"pid"`
	Exe       string   `json:"exe"`
	StartTime uint64   `json:"startTime"`
	Args      []string `json:"args"`
	Log       string   `json:"log"`
}

// daemonEnv is the environment of everything the harness runs: a fixed
// PATH and nothing inherited, so no proxy settings or credentials leak in.
// extra entries are appended.
func daemonEnv(extra []string) []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"LANG=C.UTF-8",
	}
	return append(env, extra...)
}

// startDaemon starts exe detached (its own session, output to a log file)
// and records it. The process outlives the caller: Down stops it.
func startDaemon(name, exe string, args []string, env []string) (*daemon, error) {
	if err := os.MkdirAll(logDir(), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(pidDir(), 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(logDir(), name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	fmt.Fprintf(lf, "\n==== %s %s %s\n", time.Now().Format(time.RFC3339), exe, strings.Join(args, " "))
	if err := closeInheritedOnExec(); err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = daemonEnv(env)
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	d := &daemon{Name: name, PID: cmd.Process.Pid, Exe: exe, Args: args, Log: logPath}
	d.StartTime, _ = procStartTime(d.PID)
	// Reap it if it exits while we are still around; after we exit, init does.
	go func() { _ = cmd.Wait() }()
	b, _ := json.MarshalIndent(d, "", "  ")
	if err := os.WriteFile(filepath.Join(pidDir(), name+".json"), b, 0o644); err != nil {
		return d, err
	}
	return d, nil
}

// closeInheritedOnExec marks every descriptor above standard error
// close-on-exec, so daemons outliving this process do not inherit what it
// was given: `flock LOCKFILE go run ./test/cluster/cmd/cluster up` passes
// the lock's descriptor down, and a daemon holding it would keep the lock
// for the cluster's whole life, and every later flock would wait forever.
// The descriptors Go opens itself are close-on-exec already.
func closeInheritedOnExec() error {
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("marking inherited descriptors close-on-exec before starting daemons: %w", err)
	}
	return nil
}

func loadDaemon(name string) (*daemon, error) {
	b, err := os.ReadFile(filepath.Join(pidDir(), name+".json"))
	if err != nil {
		return nil, err
	}
	d := &daemon{}
	return d, json.Unmarshal(b, d)
}

// alive reports whether the recorded process is still the one we started.
func (d *daemon) alive() bool {
	st, err := procStartTime(d.PID)
	if err != nil || st != d.StartTime {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", d.PID))
	if err != nil {
		return false
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	if exe != d.Exe {
		return false
	}
	// A zombie is not alive.
	state, _ := procState(d.PID)
	return state != "Z"
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs.
func (d *daemon) stop(grace time.Duration) error {
	if !d.alive() {
		return nil
	}
	gone := func() error {
		if d.alive() {
			return fmt.Errorf("%s (pid %d) still running", d.Name, d.PID)
		}
		return nil
	}
	_ = syscall.Kill(d.PID, syscall.SIGTERM)
	if poll.Until(context.Background(), grace, gone) == nil {
		return nil
	}
	_ = syscall.Kill(d.PID, syscall.SIGKILL)
	if err := poll.Until(context.Background(), 10*time.Second, gone); err != nil {
		return fmt.Errorf("%s (pid %d) survived SIGKILL: %w", d.Name, d.PID, err)
	}
	return nil
}

// tail returns the last n lines of the daemon's log, for error messages.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// procStat returns the fields of /proc/PID/stat after the command name.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, errors.New("malformed stat")
	}
	return strings.Fields(s[i+1:]), nil
}

func procStartTime(pid int) (uint64, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	// Field 22 of stat; f[0] is field 3.
	if len(f) < 20 {
		return 0, errors.New("short stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func procState(pid int) (string, error) {
	f, err := procStat(pid)
	if err != nil || len(f) == 0 {
		return "", err
	}
	return f[0], nil
}

// processesWhere lists PIDs whose executable is exe and whose command line
// contains every string in args.
func processesWhere(exe string, args ...string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || strings.TrimSuffix(l, " (deleted)") != exe {
			continue
		}
		cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		all := true
		for _, a := range args {
			if !strings.Contains(string(cl), a) {
				all = false
			}
		}
		if all {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killCgroupTree SIGKILLs every process in the cgroup v1 hierarchy
// root/rel (all controllers that have it) until none is left, then removes
// the cgroup directories, deepest first. It is how Down stops the
// containers: everything the kubelet runs is below /kubepods.
func killCgroupTree(ctx context.Context, rel string, logf Logf) error {
	ctrls, _ := os.ReadDir("/sys/fs/cgroup")
	var roots []string
	for _, c := range ctrls {
		p := filepath.Join("/sys/fs/cgroup", c.Name(), rel)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			roots = append(roots, p)
		}
	}
	if len(roots) == 0 {
		return nil
	}
	killed := 0
	if err := poll.Until(ctx, 30*time.Second, func() error {
		pids := map[int]bool{}
		for _, r := range roots {
			_ = filepath.WalkDir(r, func(p string, de os.DirEntry, err error) error {
				if err != nil || !de.IsDir() {
					return nil
				}
				b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
				if err != nil {
					return nil
				}
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						pids[pid] = true
					}
				}
				return nil
			})
		}
		if len(pids) == 0 {
			return nil
		}
		for pid := range pids {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
		return fmt.Errorf("processes left in cgroup %s after SIGKILL: %v", rel, slices.Sorted(maps.Keys(pids)))
	}); err != nil {
		return err
	}
	if killed > 0 {
		logf("down: killed %d container processes under cgroup %s", killed, rel)
	}
	var errs []error
	for _, r := range roots {
		var dirs []string
		_ = filepath.WalkDir(r, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := removeCgroupDir(dirs[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func removeCgroupDir(dir string) error {
	// EBUSY while the last task is still exiting.
	if err := poll.Until(context.Background(), 2*time.Second, func() error {
		if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
			return err
		}
		return nil
	}); err != nil {
		return fmt.Errorf("removing cgroup %s: %w", dir, err)
	}
	return nil
}
