package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/remocal/remocal/test/poll"
)

// Down tears the cluster down completely: the daemons and every container,
// mounts (pod network namespaces, container root filesystems, the
// kubelet's volumes), links and routes, nftables tables, sysctls, cgroups,
// containerd's state and etcd's data, and the hard-coded host paths the
// daemons created. It is safe on a machine with no cluster and after a
// failed Up. The build cache stays.
func Down(ctx context.Context, logf Logf) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := requireRoot(); err != nil {
		return err
	}
	unlock, err := lock()
	if err != nil {
		return err
	}
	defer unlock()
	return down(ctx, logf)
}

func down(ctx context.Context, logf Logf) error {
	j, jerr := loadJournal()
	if jerr != nil {
		logf("down: %v; cleaning up by name only", jerr)
	}
	if j == nil && len(findLeftovers()) == 0 {
		logf("down: no cluster on this machine")
		return nil
	}
	start := time.Now()
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	// The kubelet first, so it restarts nothing; then the node's other
	// clients; then every container; then containerd; then the control
	// plane and etcd.
	for _, n := range []string{dKubelet, dKubeProxy, dScheduler, dCM} {
		note(stopDaemon(n, 10*time.Second, logf))
	}
	note(killCgroupTree(ctx, "kubepods", logf))
	note(stopDaemon(dContainerd, 10*time.Second, logf))
	shims := processesWhere("/usr/bin/containerd-shim-runc-v2", ctrdSocket())
	for _, pid := range shims {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if len(shims) > 0 {
		logf("down: killed %d containerd shims", len(shims))
	}
	note(stopDaemon(dAPIServer, 10*time.Second, logf))
	note(stopDaemon(dEtcd, 10*time.Second, logf))
	// Anything of ours still running without a pid file.
	for _, pid := range ourProcesses() {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			logf("down: killed stray harness process %d", pid)
		}
	}
	note(waitGone(ourProcesses, 10*time.Second))
	note(waitGone(func() []int { return processesWhere("/usr/bin/containerd-shim-runc-v2", ctrdSocket()) }, 10*time.Second))

	prefixes := []string{StateDir, RunDir}
	if j != nil {
		prefixes = append(prefixes, j.CreatedPaths...)
	}
	errs = append(errs, unmountBelow(prefixes, logf)...)
	errs = append(errs, tearDownNetwork(ctx, j, logf)...)
	note(killCgroupTree(ctx, "kubepods", logf))
	cleanHardCodedLeftovers(logf)

	var remove []string
	if j != nil {
		remove = j.sortedCreatedPaths()
	}
	remove = append(remove, RunDir)
	for _, p := range remove {
		if p == StateDir {
			continue
		}
		if !removable(p) {
			errs = append(errs, fmt.Errorf("the journal lists %s, which the harness never creates: left alone", p))
			continue
		}
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", p, err))
		} else {
			logf("down: removed %s", p)
		}
	}
	// StateDir (with the journal) last, and only when everything else
	// went: a journal left behind lets the next cluster-down retry.
	if len(errs) == 0 {
		if err := os.RemoveAll(StateDir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cluster-down left something behind (run it again; the journal is kept in %s): %w", StateDir, errors.Join(errs...))
	}
	logf("down: done in %s", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// removable guards against a damaged journal: only the harness's own
// directories and the hard-coded paths are ever removed whole.
func removable(p string) bool {
	p = filepath.Clean(p)
	if p == StateDir || strings.HasPrefix(p, StateDir+"/") || p == RunDir || strings.HasPrefix(p, RunDir+"/") {
		return true
	}
	return contains(hardCodedPaths, p)
}

func stopDaemon(name string, grace time.Duration, logf Logf) error {
	d, err := loadDaemon(name)
	if err != nil {
		return nil
	}
	if !d.alive() {
		return nil
	}
	if err := d.stop(grace); err != nil {
		return err
	}
	logf("down: stopped %s (pid %d)", name, d.PID)
	return nil
}

func waitGone(list func() []int, timeout time.Duration) error {
	return poll.Until(context.Background(), timeout, func() error {
		var live []int
		for _, pid := range list() {
			if st, _ := procState(pid); st != "" && st != "Z" {
				live = append(live, pid)
			}
		}
		if len(live) == 0 {
			return nil
		}
		return fmt.Errorf("processes still running: %v", live)
	})
}
