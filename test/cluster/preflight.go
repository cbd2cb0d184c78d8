package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// checkNoForeignContainerd refuses to run next to another containerd that
// owns the hard-coded /run/containerd.
func checkNoForeignContainerd() error {
	if pids := processesWhere("/usr/bin/containerd"); len(pids) > 0 {
		return fmt.Errorf("another containerd is running (pids %v); the harness's containerd shares hard-coded paths (/run/containerd) with it: stop it first", pids)
	}
	return nil
}

// loopbackPorts are the ports the daemons listen on at 127.0.0.1.
var loopbackPorts = map[int]string{
	etcdClientPort: "etcd (clients)",
	etcdPeerPort:   "etcd (peers)",
	10248:          "the kubelet's healthz",
	10249:          "kube-proxy's metrics",
	10256:          "kube-proxy's healthz",
	10257:          "kube-controller-manager",
	10259:          "kube-scheduler",
}

// checkPortsFree fails early, with the culprit named, when another program
// holds a port a daemon needs.
func checkPortsFree() error {
	for port, who := range loopbackPorts {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("127.0.0.1:%d is taken by another program, and %s needs it: free it (ss -ltnp 'sport = :%d' names the holder)", port, who, port)
		}
		l.Close()
	}
	return nil
}

// ensureHostTools installs containerd and runc from Debian if missing, and
// checks for the rest (ip, nft).
func ensureHostTools(ctx context.Context, logf Logf) error {
	var missing []string
	for _, t := range []struct{ bin, pkg string }{
		{"/usr/bin/containerd", "containerd"},
		{"/usr/bin/containerd-shim-runc-v2", "containerd"},
		{"/usr/bin/ctr", "containerd"},
		{"/usr/sbin/runc", "runc"},
		{"/usr/sbin/nft", "nftables"},
		{"/usr/sbin/ip", "iproute2"},
	} {
		if _, err := os.Stat(t.bin); err != nil && !contains(missing, t.pkg) {
			missing = append(missing, t.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	logf("up: installing %s from Debian", strings.Join(missing, " "))
	args := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		upd := exec.CommandContext(ctx, "apt-get", "update")
		upd.Env = env
		if uout, uerr := upd.CombinedOutput(); uerr != nil {
			return fmt.Errorf("apt-get update: %w\n%s", uerr, uout)
		}
		cmd = exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		if out2, err2 := cmd.CombinedOutput(); err2 != nil {
			return fmt.Errorf("apt-get install %s: %w\n%s\n%s", strings.Join(missing, " "), err2, out, out2)
		}
	}
	return nil
}

// findLeftovers names what of a harness cluster is on the machine without
// a journal (a journal-less crash, or a removed StateDir).
func findLeftovers() []string {
	var l []string
	for _, n := range []string{NodeBridge, CNIBridge, sinkBridge} {
		if linkExists(n) {
			l = append(l, "link "+n)
		}
	}
	for _, p := range []string{StateDir, RunDir} {
		if _, err := os.Stat(p); err == nil {
			l = append(l, p)
		}
	}
	if ps := ourProcesses(); len(ps) > 0 {
		l = append(l, fmt.Sprintf("processes %v", ps))
	}
	if ts, err := nftTables(context.Background()); err == nil && contains(ts, "inet "+guardTable) {
		l = append(l, "nft table inet "+guardTable)
	}
	return l
}

// ourProcesses finds the harness's daemons without pid files: processes
// running a binary from the cache, and containerd with the harness's config.
func ourProcesses() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue
		}
		exe = strings.TrimSuffix(exe, " (deleted)")
		if strings.HasPrefix(exe, CacheDir()+"/") && !strings.HasPrefix(exe, filepath.Join(CacheDir(), "local")+"/") {
			pids = append(pids, pid)
		}
	}
	pids = append(pids, processesWhere("/usr/bin/containerd", filepath.Join(confDir(), "containerd.toml"))...)
	return pids
}
