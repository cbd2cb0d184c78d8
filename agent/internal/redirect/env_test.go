package redirect

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/remocal/remocal/internal/netns"
	"github.com/remocal/remocal/test/poll"
)

// The helper process (see TestOwnerRemovesTableOnSIGKILL) is this test binary
// started with these variables set.
const (
	helperNSEnv    = "REMOCAL_REDIRECT_HELPER_NS"
	helperTableEnv = "REMOCAL_REDIRECT_HELPER_TABLE"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperNSEnv) != "" {
		os.Exit(helperMain())
	}
	goleak.VerifyTestMain(m)
}

// helperMain opens a table with one redirect, says "ready", and then holds
// the table until stdin closes or it is killed.
func helperMain() int {
	ns, err := netns.Open(os.Getenv(helperNSEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t, err := Open(ctx, ns, os.Getenv(helperTableEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := t.Sync([]Rule{{Port: appPort, ToPort: agentPort}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// Ports used inside the test namespaces; nothing else listens there.
const (
	appPort   = 8080
	agentPort = 15001
)

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates network namespaces, a veth pair and nftables tables")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Fatalf("the ip command (iproute2) is needed to create test namespaces: %v", err)
	}
}

func ipCmd(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

var nsSeq atomic.Uint32

// newNS creates a named network namespace private to this test process and
// removes it when the test ends, pass or fail.
func newNS(tb testing.TB, tag string) (*netns.NS, string) {
	tb.Helper()
	name := fmt.Sprintf("rmcrd%d%s%d", os.Getpid(), tag, nsSeq.Add(1))
	ipCmd(tb, "netns", "add", name)
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	ns, err := netns.Open("/var/run/netns/" + name)
	require.NoError(tb, err)
	tb.Cleanup(func() { ns.Close() })
	ipCmd(tb, "-n", name, "link", "set", "lo", "up")
	return ns, name
}

// testNet is two namespaces joined by a veth pair: A plays the client, B the
// pod the agent redirects in. Nothing here touches the root namespace; the
// veth ends are created directly inside A and B.
type testNet struct {
	a, b  *netns.NS
	bName string
	bIPs  []netip.Addr // B's IPv4 and IPv6 address
}

func newTestNet(tb testing.TB) *testNet {
	tb.Helper()
	requireRoot(tb)
	a, aName := newNS(tb, "a")
	b, bName := newNS(tb, "b")
	ipCmd(tb, "link", "add", "rmcva", "netns", aName, "type", "veth", "peer", "name", "rmcvb", "netns", bName)
	sides := []struct{ ns, dev, v4, v6 string }{
		{aName, "rmcva", "10.231.0.1/24", "fd00:231::1/64"},
		{bName, "rmcvb", "10.231.0.2/24", "fd00:231::2/64"},
	}
	// Links first, addresses second: an IPv6 address added to a down link
	// only becomes usable about 2 s after link-up (measured), one added to
	// an up link at once.
	for _, side := range sides {
		ipCmd(tb, "-n", side.ns, "link", "set", side.dev, "up")
	}
	for _, side := range sides {
		ipCmd(tb, "-n", side.ns, "addr", "add", side.v4, "dev", side.dev)
		// nodad: usable at once instead of after duplicate detection.
		ipCmd(tb, "-n", side.ns, "addr", "add", side.v6, "dev", side.dev, "nodad")
	}
	n := &testNet{a: a, b: b, bName: bName, bIPs: []netip.Addr{
		netip.MustParseAddr("10.231.0.2"), netip.MustParseAddr("fd00:231::2"),
	}}
	n.waitReachable(tb)
	return n
}

// waitReachable waits until A can connect to B over both families, as link
// and address activation partly happen asynchronously in the kernel. It
// usually succeeds at the first attempt.
func (n *testNet) waitReachable(tb testing.TB) {
	tb.Helper()
	const probePort = 9
	l := serve(tb, n.b, "tcp", probePort, "probe")
	defer l.Close()
	reached := map[netip.Addr]bool{}
	if err := poll.Until(tb.Context(), 10*time.Second, func() error {
		for _, ip := range n.bIPs {
			if reached[ip] {
				continue
			}
			addr := netip.AddrPortFrom(ip, probePort).String()
			ctx, cancel := context.WithTimeout(tb.Context(), 300*time.Millisecond)
			c, err := n.a.DialContext(ctx, "tcp", addr)
			cancel()
			if err != nil {
				return fmt.Errorf("namespace B (%s) not reachable from A: %w", addr, err)
			}
			c.Close()
			reached[ip] = true
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
}

// serve runs a TCP server in ns that answers every connection with one line:
// its name and the connection's original destination (or "error:..." if
// OriginalDst failed, as it does for connections conntrack does not track). It stops when the test ends or the listener is closed.
func serve(tb testing.TB, ns *netns.NS, network string, port uint16, name string) net.Listener {
	tb.Helper()
	l, err := ns.Listen(context.Background(), network, fmt.Sprintf(":%d", port))
	require.NoError(tb, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			var dst string
			if d, err := OriginalDst(c.(*net.TCPConn)); err == nil {
				dst = d.String()
			} else {
				dst = "error:" + strings.ReplaceAll(err.Error(), " ", "_")
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "%s %s\n", name, dst)
			c.Close()
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l
}

// ask connects from ns to addr and returns which server answered and the
// original destination it saw.
func ask(tb testing.TB, from *netns.NS, addr netip.AddrPort) (server, origDst string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := from.DialContext(ctx, "tcp", addr.String())
	require.NoError(tb, err, "dial %s", addr)
	defer c.Close()
	require.NoError(tb, c.SetDeadline(time.Now().Add(5*time.Second)))
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(tb, err, "read answer from %s", addr)
	server, origDst, ok := strings.Cut(strings.TrimSpace(line), " ")
	require.True(tb, ok, "malformed answer %q", line)
	return server, origDst
}

// dumpRules reads the chain back through github.com/google/nftables, an
// independent decoder, and turns each rule into a Rule, failing if any rule
// is not exactly what ruleExprs would produce.
func dumpRules(tb testing.TB, ns *netns.NS, table string) []Rule {
	tb.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	require.NoError(tb, err)
	nrs, err := c.GetRules(&nftables.Table{Name: table, Family: nftables.TableFamilyINet}, &nftables.Chain{Name: chainName})
	require.NoError(tb, err)
	rules := []Rule{}
	for _, nr := range nrs {
		require.Len(tb, nr.Exprs, 6, "rule %+v", nr.Exprs)
		port, ok1 := nr.Exprs[3].(*expr.Cmp)
		to, ok2 := nr.Exprs[4].(*expr.Immediate)
		require.True(tb, ok1 && ok2 && len(port.Data) == 2 && len(to.Data) == 2, "unexpected rule shape %+v", nr.Exprs)
		r := Rule{Port: uint16(port.Data[0])<<8 | uint16(port.Data[1]), ToPort: uint16(to.Data[0])<<8 | uint16(to.Data[1])}
		// The kernel reports the implied max-port register explicitly.
		if redir, ok := nr.Exprs[5].(*expr.Redir); ok && redir.RegisterProtoMax == redir.RegisterProtoMin {
			redir.RegisterProtoMax = 0
		}
		require.Equal(tb, ruleExprs(r), nr.Exprs)
		rules = append(rules, r)
	}
	return rules
}

func tableNames(tb testing.TB, ns *netns.NS) []string {
	tb.Helper()
	names, err := Tables(ns)
	require.NoError(tb, err)
	return names
}

func findTable(tb testing.TB, ns *netns.NS, name string) (tableInfo, bool) {
	tb.Helper()
	infos, err := listTables(ns)
	require.NoError(tb, err)
	for _, ti := range infos {
		if ti.name == name {
			return ti, true
		}
	}
	return tableInfo{}, false
}

var tableSeq atomic.Uint32

func tableName() string { return fmt.Sprintf("remocaltest%d", tableSeq.Add(1)) }

func openTable(tb testing.TB, ns *netns.NS) *Table {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t, err := Open(ctx, ns, tableName())
	require.NoError(tb, err)
	tb.Cleanup(func() { t.Close() })
	return t
}
