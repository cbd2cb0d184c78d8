package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// trackedSysctls are the sysctls Up sets or the daemons are known to set
// (the kubelet's kernel tunables, kube-proxy's conntrack settings, the
// bridge plugin's forwarding). Up records their values first; Down writes
// them back.
// The order is the restore order: ip_forward first, since writing it also
// resets every interface's forwarding and accept_redirects.
var trackedSysctls = []string{
	"net/ipv4/ip_forward",
	"net/ipv4/conf/all/forwarding",
	"net/ipv4/conf/default/forwarding",
	"net/ipv4/conf/all/accept_redirects",
	"net/ipv4/conf/default/accept_redirects",
	"net/ipv6/conf/all/forwarding",
	"net/ipv6/conf/default/forwarding",
	"net/ipv4/conf/all/route_localnet",
	"net/bridge/bridge-nf-call-iptables",
	"net/bridge/bridge-nf-call-ip6tables",
	"vm/overcommit_memory",
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
	"net/netfilter/nf_conntrack_max",
	"net/netfilter/nf_conntrack_tcp_timeout_established",
	"net/netfilter/nf_conntrack_tcp_timeout_close_wait",
	"net/netfilter/nf_conntrack_tcp_be_liberal",
	"net/netfilter/nf_conntrack_udp_timeout",
	"net/netfilter/nf_conntrack_udp_timeout_stream",
}

// knownNftTables are the tables the harness and its daemons create:
// the egress guard, kube-proxy's, portmap's. Down deletes those that did
// not exist before Up.
var knownNftTables = []string{
	"inet " + guardTable,
	"ip kube-proxy",
	"ip6 kube-proxy",
	"ip cni_hostport",
	"ip6 cni_hostport",
	"inet cni_hostport",
}

func readSysctl(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", name))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysctl(name, value string) error {
	return os.WriteFile(filepath.Join("/proc/sys", name), []byte(value+"\n"), 0o644)
}

// run runs a host command and returns its combined output, or an error
// that includes it.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = daemonEnv(nil)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// runInput is run with stdin.
func runInput(ctx context.Context, input, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = daemonEnv(nil)
	cmd.Stdin = strings.NewReader(input)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// bridgeNetfilter reports whether bridged traffic can pass netfilter
// (br_netfilter, built into this kind of machine's kernel).
func bridgeNetfilter() bool {
	_, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables")
	return err == nil
}

func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}

// checkAddressSpace fails if the machine already routes any of the
// harness's ranges through something that is not the harness's own.
func checkAddressSpace(ctx context.Context) error {
	out, err := run(ctx, "ip", "-j", "-4", "route", "show", "table", "all")
	if err != nil {
		return err
	}
	var routes []struct {
		Dst  string `json:"dst"`
		Dev  string `json:"dev"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		return fmt.Errorf("parsing ip route output: %w", err)
	}
	ours := []netip.Prefix{
		netip.MustParsePrefix(PodCIDR),
		netip.MustParsePrefix(ServiceCIDR),
		netip.MustParsePrefix(NodeIP + "/32"),
	}
	for _, r := range routes {
		if r.Dst == "" || r.Dst == "default" || strings.HasPrefix(r.Dev, "rmc-") || r.Dev == "lo" {
			continue
		}
		dst := r.Dst
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		p, err := netip.ParsePrefix(dst)
		if err != nil {
			continue
		}
		for _, o := range ours {
			if p.Overlaps(o) {
				return fmt.Errorf("this machine already routes %s via %s, which overlaps the cluster's %s; "+
					"the harness will not change existing routes (free the range or change the constants in test/cluster/config.go)", r.Dst, r.Dev, o)
			}
		}
	}
	return nil
}

// setUpNetwork creates the node bridge, the CNI bridge, the service route,
// the egress guard and the forwarding sysctls, recording each first.
func setUpNetwork(ctx context.Context, j *journal, logf Logf) error {
	if err := checkAddressSpace(ctx); err != nil {
		return err
	}
	for _, l := range []struct{ name, addr string }{
		{NodeBridge, NodeIP + "/32"},
		{CNIBridge, CNIGateway + "/24"},
	} {
		if err := j.addLink(l.name); err != nil {
			return err
		}
		if !linkExists(l.name) {
			if _, err := run(ctx, "ip", "link", "add", l.name, "type", "bridge"); err != nil {
				return err
			}
		}
		// No IPv6 on the harness's links: nothing of the cluster uses it.
		_ = writeSysctl("net/ipv6/conf/"+l.name+"/disable_ipv6", "1")
		if _, err := run(ctx, "ip", "addr", "replace", l.addr, "dev", l.name); err != nil {
			return err
		}
		if _, err := run(ctx, "ip", "link", "set", l.name, "up"); err != nil {
			return err
		}
	}
	if _, err := run(ctx, "ip", "route", "replace", ServiceCIDR, "dev", CNIBridge); err != nil {
		return err
	}
	if err := installEgressGuard(ctx); err != nil {
		return err
	}
	set := map[string]string{"net/ipv4/ip_forward": "1"}
	if bridgeNetfilter() {
		set["net/bridge/bridge-nf-call-iptables"] = "1"
		set["net/bridge/bridge-nf-call-ip6tables"] = "1"
	}
	for name, v := range set {
		if err := writeSysctl(name, v); err != nil {
			return fmt.Errorf("setting %s: %w", name, err)
		}
	}
	logf("network: node %s on %s, pods %s on %s, services %s routed to %s, egress guard in nft table inet %s",
		NodeIP, NodeBridge, NodePodCIDR, CNIBridge, ServiceCIDR, CNIBridge, guardTable)
	return nil
}

// guardRules is the egress guard: in the forward hook, ahead of anything
// else, drop every packet that comes from the pod network and would leave
// through any interface but the pods' own bridge. (Pod to pod and pod to
// Service traffic stays on the bridge; pod to node is local delivery, not
// forwarding.) A drop in any base chain is final, whatever other tables
// accept.
func guardRules() string {
	return fmt.Sprintf(`table inet %[1]s {
	chain forward {
		type filter hook forward priority filter - 10; policy accept;
		iifname "%[2]s" oifname != "%[2]s" counter drop comment "remocal egress guard: pod traffic never leaves the machine"
		ip saddr %[3]s oifname != "%[2]s" counter drop comment "remocal egress guard: pod source addresses"
	}
}
`, guardTable, CNIBridge, PodCIDR)
}

func installEgressGuard(ctx context.Context) error {
	// Replace as one transaction: declare, flush, fill.
	script := fmt.Sprintf("table inet %s\ndelete table inet %s\n%s", guardTable, guardTable, guardRules())
	_, err := runInput(ctx, script, "nft", "-f", "-")
	return err
}

// GuardDrops returns how many packets the egress guard has dropped.
func GuardDrops(ctx context.Context) (int, error) {
	out, err := run(ctx, "nft", "-j", "list", "table", "inet", guardTable)
	if err != nil {
		return 0, err
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return 0, err
	}
	n, rules := 0, 0
	for _, obj := range doc.Nftables {
		raw, ok := obj["rule"]
		if !ok {
			continue
		}
		var r struct {
			Expr []map[string]json.RawMessage `json:"expr"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return 0, err
		}
		rules++
		for _, e := range r.Expr {
			if c, ok := e["counter"]; ok {
				var cnt struct {
					Packets int `json:"packets"`
				}
				_ = json.Unmarshal(c, &cnt)
				n += cnt.Packets
			}
		}
	}
	if rules != 2 {
		return 0, fmt.Errorf("egress guard table inet %s has %d rules, want 2", guardTable, rules)
	}
	return n, nil
}

func nftTables(ctx context.Context) ([]string, error) {
	out, err := run(ctx, "nft", "list", "tables")
	if err != nil {
		return nil, err
	}
	var ts []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "table" {
			ts = append(ts, f[1]+" "+f[2])
		}
	}
	return ts, nil
}

// tearDownNetwork removes the harness's links, its guard and the daemons'
// nftables tables, and restores the sysctls. It works without a journal
// (by name) as far as it safely can.
func tearDownNetwork(ctx context.Context, j *journal, logf Logf) []error {
	var errs []error
	// Pod veths go with their namespaces; any left attached go with the bridge.
	links := []string{CNIBridge, NodeBridge, sinkBridge}
	if j != nil {
		for _, l := range j.Links {
			if !contains(links, l) {
				links = append(links, l)
			}
		}
	}
	for _, l := range vethsOn(CNIBridge) {
		if _, err := run(ctx, "ip", "link", "del", l); err != nil && linkExists(l) {
			errs = append(errs, err)
		}
	}
	for _, l := range links {
		if !linkExists(l) {
			continue
		}
		if _, err := run(ctx, "ip", "link", "del", l); err != nil {
			errs = append(errs, err)
		} else {
			logf("down: removed link %s", l)
		}
	}
	// The service route went with the bridge; make sure.
	_, _ = run(ctx, "ip", "route", "del", ServiceCIDR)
	// Local sides of end-to-end tests that were killed before their
	// cleanup (see LocalSide).
	if out, err := run(ctx, "ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			if name, _, _ := strings.Cut(strings.TrimSpace(line), " "); strings.HasPrefix(name, localSidePrefix) {
				if _, err := run(ctx, "ip", "netns", "del", name); err != nil {
					errs = append(errs, err)
				} else {
					logf("down: removed network namespace %s", name)
				}
			}
		}
	}

	tables, err := nftTables(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	var before []string
	if j != nil {
		before = j.NftTablesBefore
	}
	for _, t := range knownNftTables {
		if !contains(tables, t) || contains(before, t) {
			continue
		}
		if _, err := run(ctx, "nft", "delete", "table", t); err != nil {
			errs = append(errs, err)
		} else {
			logf("down: deleted nft table %s", t)
		}
	}
	if err := cleanKubeIptables(ctx, before, logf); err != nil {
		errs = append(errs, err)
	}
	if j != nil {
		names := append([]string(nil), trackedSysctls...)
		var others []string
		for n := range j.Sysctls {
			if !contains(names, n) {
				others = append(others, n)
			}
		}
		sort.Strings(others)
		for _, n := range append(names, others...) {
			if _, ok := j.Sysctls[n]; !ok {
				continue
			}
			want := j.Sysctls[n]
			cur, err := readSysctl(n)
			if err != nil || cur == want {
				continue
			}
			if err := writeSysctl(n, want); err != nil {
				errs = append(errs, fmt.Errorf("restoring sysctl %s to %q: %w", n, want, err))
			} else {
				logf("down: sysctl %s restored to %s (was %s)", strings.ReplaceAll(n, "/", "."), want, cur)
			}
		}
	}
	return errs
}

func vethsOn(bridge string) []string {
	ents, err := os.ReadDir(filepath.Join("/sys/class/net", bridge, "brif"))
	if err != nil {
		return nil
	}
	var ls []string
	for _, e := range ents {
		ls = append(ls, e.Name())
	}
	return ls
}

// unmountBelow unmounts, deepest first, every mount point at or below one of
// prefixes, and the pod network namespaces the CNI left in /run/netns.
func unmountBelow(prefixes []string, logf Logf) []error {
	var errs []error
	for pass := 0; pass < 5; pass++ {
		mps, err := mountPoints()
		if err != nil {
			return append(errs, err)
		}
		var todo []string
		for _, mp := range mps {
			for _, p := range prefixes {
				if mp == p || strings.HasPrefix(mp, p+"/") {
					todo = append(todo, mp)
					break
				}
			}
			if strings.HasPrefix(mp, "/run/netns/cni-") || strings.HasPrefix(mp, "/var/run/netns/cni-") {
				todo = append(todo, mp)
			}
		}
		if len(todo) == 0 {
			return errs
		}
		sort.Slice(todo, func(a, b int) bool { return strings.Count(todo[a], "/") > strings.Count(todo[b], "/") })
		var failed []error
		for _, mp := range todo {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				failed = append(failed, fmt.Errorf("unmounting %s: %w", mp, err))
			}
		}
		if pass == 0 {
			logf("down: unmounted %d mount points", len(todo))
		}
		if len(failed) > 0 && pass == 4 {
			errs = append(errs, failed...)
		}
	}
	return errs
}

// mountPoints lists this mount namespace's mount points (unescaped).
func mountPoints() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mps = append(mps, unescapeMount(f[4]))
	}
	return mps, nil
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cleanHardCodedLeftovers removes what the daemons put in hard-coded places
// that existed before Up (so are not removed whole): container log
// symlinks pointing into StateDir, the CNI results of the harness's network,
// the kubelet's device-plugin socket.
func cleanHardCodedLeftovers(logf Logf) {
	if ents, err := os.ReadDir("/var/log/containers"); err == nil {
		for _, e := range ents {
			p := filepath.Join("/var/log/containers", e.Name())
			if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, StateDir+"/") {
				_ = os.Remove(p)
			}
		}
	}
	for _, dir := range []string{"/var/lib/cni/results", "/var/lib/cni/networks/" + cniNetworkName} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), cniNetworkName+"-") || strings.HasSuffix(dir, cniNetworkName) {
				_ = os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
	_ = os.Remove("/var/lib/kubelet/device-plugins/kubelet.sock")
	// A user's kubectl with the admin kubeconfig caches discovery per server.
	if home, err := os.UserHomeDir(); err == nil {
		_ = os.RemoveAll(filepath.Join(home, ".kube", "cache", "discovery", fmt.Sprintf("%s_%d", NodeIP, APIServerPort)))
	}
}

// cleanKubeIptables removes what the kubelet adds through iptables-nft when
// iptables is installed: KUBE-* chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY,
// KUBE-IPTABLES-HINT) and the rules that jump to them, in the ip/ip6
// filter, nat and mangle tables. A table that did not exist before Up and
// is left empty goes too; anything else in these tables is left alone.
func cleanKubeIptables(ctx context.Context, before []string, logf Logf) error {
	tables, err := nftTables(ctx)
	if err != nil {
		return err
	}
	var script strings.Builder
	var touched []string
	for _, fam := range []string{"ip", "ip6"} {
		for _, name := range []string{"filter", "nat", "mangle"} {
			t := fam + " " + name
			if !contains(tables, t) {
				continue
			}
			out, err := run(ctx, "nft", "-j", "list", "table", fam, name)
			if err != nil {
				return err
			}
			var doc struct {
				Nftables []struct {
					Chain *struct {
						Name string `json:"name"`
						Hook string `json:"hook"`
					} `json:"chain"`
					Rule *struct {
						Chain  string                       `json:"chain"`
						Handle int                          `json:"handle"`
						Expr   []map[string]json.RawMessage `json:"expr"`
					} `json:"rule"`
				} `json:"nftables"`
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				return err
			}
			var kubeChains []string
			otherRules := 0
			ours := 0
			for _, o := range doc.Nftables {
				if o.Chain != nil && strings.HasPrefix(o.Chain.Name, "KUBE-") {
					kubeChains = append(kubeChains, o.Chain.Name)
				}
				if o.Rule == nil {
					continue
				}
				if strings.HasPrefix(o.Rule.Chain, "KUBE-") {
					continue // goes with its chain
				}
				jumpsKube := false
				for _, e := range o.Rule.Expr {
					for _, verb := range []string{"jump", "goto"} {
						if raw, ok := e[verb]; ok {
							var v struct {
								Target string `json:"target"`
							}
							_ = json.Unmarshal(raw, &v)
							if strings.HasPrefix(v.Target, "KUBE-") {
								jumpsKube = true
							}
						}
					}
				}
				if jumpsKube {
					fmt.Fprintf(&script, "delete rule %s %s %s handle %d\n", fam, name, o.Rule.Chain, o.Rule.Handle)
					ours++
				} else {
					otherRules++
				}
			}
			for _, ch := range kubeChains {
				fmt.Fprintf(&script, "flush chain %s %s %s\n", fam, name, ch)
			}
			for _, ch := range kubeChains {
				fmt.Fprintf(&script, "delete chain %s %s %s\n", fam, name, ch)
			}
			if len(kubeChains) > 0 || ours > 0 {
				touched = append(touched, t)
			}
			if !contains(before, t) && otherRules == 0 && (len(kubeChains) > 0 || ours > 0) {
				fmt.Fprintf(&script, "delete table %s %s\n", fam, name)
			}
		}
	}
	if script.Len() == 0 {
		return nil
	}
	if _, err := runInput(ctx, script.String(), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("removing the kubelet's iptables chains: %w", err)
	}
	logf("down: removed the kubelet's KUBE-* iptables chains from %s", strings.Join(touched, ", "))
	return nil
}
