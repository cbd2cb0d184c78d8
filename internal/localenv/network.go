package localenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

const (
	netnsRunDir = "/var/run/netns" // where `ip netns add` pins namespaces
	netnsEtcDir = "/etc/netns"     // where `ip netns exec` takes per-namespace /etc files from
	bridgeName  = "br0"
)

// newPod describes a pod; addPods creates it.
func (e *Env) newPod(name string, ip netip.Addr, hostname string) *Pod {
	return &Pod{Name: name, NetNSName: e.nsName(name), IP: ip, Hostname: hostname, env: e}
}

// addPods creates the namespaces of pods (already listed in e.pods) and wires
// them to the bridge, creating the cluster namespace and bridge too when
// withCluster is set. Everything is
// done by `ip` running against the target namespaces (-n), and veth ends are
// created directly inside them, so the caller's own namespace never sees a
// new interface, address or route.
func (e *Env) addPods(ctx context.Context, withCluster bool, pods ...*Pod) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errors.New("localenv: environment is closed")
	}
	var add strings.Builder
	var names []string
	if withCluster {
		names = append(names, e.ClusterNetNSName)
	}
	for _, p := range pods {
		names = append(names, p.NetNSName)
	}
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(netnsRunDir, n)); err == nil {
			e.mu.Unlock()
			return fmt.Errorf("localenv: network namespace %s already exists; another environment uses prefix %q (pick another Options.Prefix, or remove it with: ip netns del %s)", n, e.Prefix, n)
		}
		fmt.Fprintf(&add, "netns add %s\n", n)
	}
	// Recorded before creation, so Close removes even a half-made set.
	e.namespaces = append(e.namespaces, names...)
	var cluster strings.Builder
	if withCluster {
		// No address on the bridge: the cluster namespace is a switch,
		// not a router, and nothing outside the pods can reach them.
		fmt.Fprintf(&cluster, "link set lo up\nlink add %s type bridge\nlink set %s up\n", bridgeName, bridgeName)
	}
	for _, p := range pods {
		e.vethSeq++
		p.veth = "veth" + strconv.Itoa(e.vethSeq)
		fmt.Fprintf(&cluster, "link add %s type veth peer name eth0 address %s netns %s\n", p.veth, podMAC(p.IP), p.NetNSName)
		fmt.Fprintf(&cluster, "link set %s master %s up\n", p.veth, bridgeName)
	}
	e.mu.Unlock()

	if err := e.runIP(ctx, []string{"-batch", "-"}, add.String()); err != nil {
		return fmt.Errorf("localenv: create network namespaces: %w", err)
	}
	if err := e.runIP(ctx, []string{"-n", e.ClusterNetNSName, "-batch", "-"}, cluster.String()); err != nil {
		return fmt.Errorf("localenv: create bridge and veth pairs in %s: %w", e.ClusterNetNSName, err)
	}
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			script := fmt.Sprintf("link set lo up\naddr add %s/%d dev eth0\nlink set eth0 up\n", p.IP, subnet.Bits())
			if err := e.runIP(ctx, []string{"-n", p.NetNSName, "-batch", "-"}, script); err != nil {
				errs[i] = fmt.Errorf("localenv: configure pod %s: %w", p.Name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// podMAC derives a pod's MAC address from its IP, as some CNI plugins do. A
// pod recreated at the same address (StartApp after a failure or a kill) then
// has the same MAC, so the other pods' ARP caches stay right; with random
// MACs they would send to the vanished interface until their stale neighbour
// entries time out.
func podMAC(ip netip.Addr) string {
	a := ip.As4()
	return fmt.Sprintf("02:72:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3])
}

// runIP runs ip with a batch script on stdin.
func (e *Env) runIP(ctx context.Context, args []string, stdin string) error {
	cmd := exec.CommandContext(ctx, e.tools.ip, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = []string{"PATH=" + PodPATH}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s\n(batch was:\n%s)", strings.Join(args, " "), err, bytes.TrimSpace(out), stdin)
	}
	return nil
}

var staleRE = regexp.MustCompile(`^rmc([0-9]+)-`)

// reapStale removes namespaces and /etc/netns directories that an earlier
// process made with the default prefix and could not remove because it was
// killed. Only names whose pid is gone are touched, so concurrent test
// processes keep theirs. Failures are logged, not returned: leftovers cost
// little and must not stop a fresh environment.
func (e *Env) reapStale() {
	stale := map[string]bool{}
	isStale := func(name string) bool {
		m := staleRE.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() {
			return false
		}
		return !pidAlive(pid)
	}
	var namespaces []string
	if ents, err := os.ReadDir(netnsRunDir); err == nil {
		for _, d := range ents {
			if isStale(d.Name()) {
				namespaces = append(namespaces, d.Name())
				stale[d.Name()] = true
			}
		}
	}
	var etcDirs []string
	if ents, err := os.ReadDir(netnsEtcDir); err == nil {
		for _, d := range ents {
			if isStale(d.Name()) {
				etcDirs = append(etcDirs, d.Name())
				stale[d.Name()] = true
			}
		}
	}
	if len(stale) == 0 {
		return
	}
	ctx := context.Background()
	var script strings.Builder
	for _, ns := range namespaces {
		// Processes in it would keep the namespace (and its addresses)
		// alive after its name is gone.
		if out, err := exec.Command(e.tools.ip, "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		fmt.Fprintf(&script, "netns del %s\n", ns)
	}
	if script.Len() > 0 {
		if err := e.runIP(ctx, []string{"-force", "-batch", "-"}, script.String()); err != nil {
			e.logfNow("localenv: removing stale namespaces: %v", err)
		}
	}
	for _, d := range etcDirs {
		if err := os.RemoveAll(filepath.Join(netnsEtcDir, d)); err != nil {
			e.logfNow("localenv: removing stale %s: %v", d, err)
		}
	}
	e.logfNow("localenv: removed leftovers of dead processes: namespaces %v, %s dirs %v", namespaces, netnsEtcDir, etcDirs)
}

func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
