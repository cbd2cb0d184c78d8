package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// LocalSide is the developer's laptop in an end-to-end test: a network
// namespace with loopback and one veth whose only route leads to the
// apiserver's address on this machine. Whatever a program there reaches of
// the cluster (pod and Service addresses, cluster DNS), it reaches through
// remocal; a connection remocal failed to take over meets ENETUNREACH
// instead of quietly going through the host.
type LocalSide struct {
	// Name is the namespace's name (ip netns).
	Name string
	// HostAddr is the host's end of the veth, reachable from the
	// namespace: where a test serves something the local side must reach
	// (a proxy to the apiserver, for example).
	HostAddr netip.Addr
	hostLink string
}

// localSides numbers the /30 networks of concurrent local sides.
var localSides struct {
	mu   sync.Mutex
	next int
}

// localSidePrefix names local sides' namespaces, so that teardown finds
// those a killed test left.
const localSidePrefix = "rmc-ls-"

// localSideNet is where local sides' veth pairs are addressed: outside the
// cluster's node, pod and service ranges.
var localSideNet = netip.MustParsePrefix("10.243.128.0/17")

// LocalSide creates a local side for tb, removed when tb ends.
func (c *Cluster) LocalSide(tb testing.TB) *LocalSide {
	tb.Helper()
	localSides.mu.Lock()
	n := localSides.next
	localSides.next++
	localSides.mu.Unlock()
	base := localSideNet.Addr().As4()
	off := n * 4
	base[2] += byte(off >> 8)
	base[3] += byte(off)
	host := netip.AddrFrom4([4]byte{base[0], base[1], base[2], base[3] + 1})
	peer := host.Next()
	id := fmt.Sprintf("%d-%d", pidSuffix(), n)
	ls := &LocalSide{Name: localSidePrefix + id, HostAddr: host, hostLink: "rmc-ls" + id}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tb.Cleanup(func() { ls.remove() })
	peerLink := ls.hostLink + "p"
	for _, args := range [][]string{
		{"netns", "add", ls.Name},
		{"link", "add", ls.hostLink, "type", "veth", "peer", "name", peerLink, "netns", ls.Name},
		{"addr", "add", host.String() + "/30", "dev", ls.hostLink},
		{"link", "set", ls.hostLink, "up"},
		{"-n", ls.Name, "link", "set", "lo", "up"},
		{"-n", ls.Name, "addr", "add", peer.String() + "/30", "dev", peerLink},
		{"-n", ls.Name, "link", "set", peerLink, "up"},
		// The apiserver only: no default route.
		{"-n", ls.Name, "route", "add", NodeIP + "/32", "via", host.String()},
	} {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			tb.Fatalf("local side: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return ls
}

// pidSuffix keeps names of concurrent test binaries apart while staying
// within the 15 characters of a link name.
func pidSuffix() int { return os.Getpid() % 100000 }

// Command runs a program in the local side's network namespace.
func (ls *LocalSide) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ls.Name, name}, args...)...)
}

// remove deletes the namespace (and with it the veth pair).
func (ls *LocalSide) remove() {
	exec.Command("ip", "netns", "del", ls.Name).Run()
	exec.Command("ip", "link", "del", ls.hostLink).Run()
}
