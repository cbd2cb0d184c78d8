package redirect

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/remocal/remocal/test/poll"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestOpenCreatesOwnedTable(t *testing.T) {
	requireRoot(t)
	ns, _ := newNS(t, "o")

	tbl := openTable(t, ns)
	assert.Contains(t, tableNames(t, ns), tbl.Name())

	info, ok := findTable(t, ns, tbl.Name())
	require.True(t, ok)
	assert.NotZero(t, info.flags&tableFlagOwner, "owner flag not set: flags %#x", info.flags)
	require.True(t, info.hasOwner, "kernel reported no owner")
	tbl.mu.Lock()
	pid := tbl.conn.PID()
	tbl.mu.Unlock()
	assert.Equal(t, pid, info.owner, "table owned by another socket")

	// The chain must be a nat base chain at dstnat, or redirect is refused or
	// runs in the wrong place.
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	require.NoError(t, err)
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	require.NoError(t, err)
	require.Len(t, chains, 1)
	ch := chains[0]
	assert.Equal(t, chainName, ch.Name)
	assert.Equal(t, tbl.Name(), ch.Table.Name)
	assert.Equal(t, nftables.ChainTypeNAT, ch.Type)
	require.NotNil(t, ch.Hooknum)
	require.NotNil(t, ch.Priority)
	assert.Equal(t, *nftables.ChainHookPrerouting, *ch.Hooknum)
	assert.Equal(t, nftables.ChainPriority(-100), *ch.Priority)
	assert.Empty(t, dumpRules(t, ns, tbl.Name()))

	// A second Open of a live agent's table must fail, not take over.
	_, err = Open(context.Background(), ns, tbl.Name())
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrTableExists)
	assert.ErrorIs(t, err, unix.EPERM, "kernel refuses non-owners with EPERM")
	t.Logf("second Open: %v", err)

	require.NoError(t, tbl.Close())
	assert.NotContains(t, tableNames(t, ns), tbl.Name())
	require.NoError(t, tbl.Close(), "Close is idempotent")
	err = tbl.Sync([]Rule{{Port: 1, ToPort: 2}})
	assert.ErrorIs(t, err, net.ErrClosed)

	// The name is free again once closed.
	again, err := Open(context.Background(), ns, tbl.Name())
	require.NoError(t, err)
	require.NoError(t, again.Close())
}

func TestOpenRefusesUnownedExistingTable(t *testing.T) {
	requireRoot(t)
	ns, _ := newNS(t, "e")
	name := tableName()
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	require.NoError(t, err)
	c.AddTable(&nftables.Table{Name: name, Family: nftables.TableFamilyINet})
	require.NoError(t, c.Flush())

	_, err = Open(context.Background(), ns, name)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrTableExists)
	assert.ErrorIs(t, err, unix.EEXIST)
	t.Logf("Open over an unowned table: %v", err)

	// The failed Open must not have touched the existing table.
	info, ok := findTable(t, ns, name)
	require.True(t, ok)
	assert.Zero(t, info.flags&tableFlagOwner)
}

func TestOpenValidates(t *testing.T) {
	requireRoot(t)
	ns, _ := newNS(t, "v")
	for _, name := range []string{"", "nat", "xremocal", "remocal\x00x", "remocal" + strings.Repeat("x", 300)} {
		_, err := Open(context.Background(), ns, name)
		assert.Error(t, err, "name %q", name)
	}
	_, err := Open(context.Background(), nil, "remocal")
	assert.Error(t, err)
	_, err = Tables(nil)
	assert.Error(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Open(ctx, ns, "remocal")
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, tableNames(t, ns))
}

func TestRedirect(t *testing.T) {
	n := newTestNet(t)
	// Per-family listeners (AF_INET, and AF_INET6 with IPV6_V6ONLY) and a
	// dual-stack one, where IPv4 connections have v4-mapped addresses: an
	// agent may use either.
	serve(t, n.b, "tcp", appPort, "app")
	serve(t, n.b, "tcp", agentPort, "agent")
	const agentPerFamily = 15002
	serve(t, n.b, "tcp4", agentPerFamily, "agent4")
	serve(t, n.b, "tcp6", agentPerFamily, "agent6")
	const appPort2 = 8081
	serve(t, n.b, "tcp", appPort2, "app2")

	tbl := openTable(t, n.b)
	for _, ip := range n.bIPs {
		t.Run(map[bool]string{true: "IPv4", false: "IPv6"}[ip.Is4()], func(t *testing.T) {
			dst := netip.AddrPortFrom(ip, appPort)
			dst2 := netip.AddrPortFrom(ip, appPort2)

			server, _ := ask(t, n.a, dst)
			assert.Equal(t, "app", server, "before any rule")

			require.NoError(t, tbl.Sync([]Rule{{Port: appPort, ToPort: agentPort}, {Port: appPort2, ToPort: agentPerFamily}}))
			server, orig := ask(t, n.a, dst)
			assert.Equal(t, "agent", server, "redirected to the dual-stack agent listener")
			assert.Equal(t, dst.String(), orig, "original destination")
			server, orig = ask(t, n.a, dst2)
			want := map[bool]string{true: "agent4", false: "agent6"}[ip.Is4()]
			assert.Equal(t, want, server, "redirected to the per-family agent listener")
			assert.Equal(t, dst2.String(), orig, "original destination")

			require.NoError(t, tbl.Sync(nil))
			server, _ = ask(t, n.a, dst)
			assert.Equal(t, "app", server, "after the rules are removed")
			server, _ = ask(t, n.a, dst2)
			assert.Equal(t, "app2", server, "after the rules are removed")
			assert.Empty(t, dumpRules(t, n.b, tbl.Name()))
		})
	}
}

func TestSyncIsLevelBased(t *testing.T) {
	n := newTestNet(t)
	const x, y = 15080, 15081
	for _, s := range []struct {
		port uint16
		name string
	}{{80, "app80"}, {81, "app81"}, {x, "x"}, {y, "y"}} {
		serve(t, n.b, "tcp", s.port, s.name)
	}
	tbl := openTable(t, n.b)
	to := func(port uint16) string {
		server, _ := ask(t, n.a, netip.AddrPortFrom(n.bIPs[0], port))
		return server
	}

	both := []Rule{{Port: 80, ToPort: x}, {Port: 81, ToPort: y}}
	require.NoError(t, tbl.Sync(both))
	assert.Equal(t, both, dumpRules(t, n.b, tbl.Name()))
	assert.Equal(t, "x", to(80))
	assert.Equal(t, "y", to(81))

	// Same set again: still exactly these rules, not duplicates.
	require.NoError(t, tbl.Sync(both))
	assert.Equal(t, both, dumpRules(t, n.b, tbl.Name()))

	require.NoError(t, tbl.Sync([]Rule{{Port: 81, ToPort: y}}))
	assert.Equal(t, []Rule{{Port: 81, ToPort: y}}, dumpRules(t, n.b, tbl.Name()))
	assert.Equal(t, "app80", to(80), "80 no longer redirected")
	assert.Equal(t, "y", to(81), "81 still redirected")

	// Retargeting a port is a replace, too.
	require.NoError(t, tbl.Sync([]Rule{{Port: 81, ToPort: x}}))
	assert.Equal(t, "x", to(81))
}

func TestSyncRejectsBadSetsWithoutChanges(t *testing.T) {
	requireRoot(t)
	ns, _ := newNS(t, "r")
	tbl := openTable(t, ns)
	want := []Rule{{Port: 80, ToPort: 1080}}
	require.NoError(t, tbl.Sync(want))

	for _, bad := range [][]Rule{
		{{Port: 81, ToPort: 1081}, {Port: 0, ToPort: 1}},
		{{Port: 81, ToPort: 0}},
		{{Port: 81, ToPort: 1081}, {Port: 81, ToPort: 1082}},
	} {
		assert.Error(t, tbl.Sync(bad), "%v", bad)
		assert.Equal(t, want, dumpRules(t, ns, tbl.Name()))
	}
	// Exact duplicates are harmless and collapse into one rule.
	require.NoError(t, tbl.Sync([]Rule{{Port: 81, ToPort: 1081}, {Port: 81, ToPort: 1081}}))
	assert.Equal(t, []Rule{{Port: 81, ToPort: 1081}}, dumpRules(t, ns, tbl.Name()))
}

// TestFailedBatchChangesNothing makes the kernel reject the last message of a
// Sync-like batch, after the flush and a valid rule, and checks that the
// whole batch was discarded, the errno surfaced with context, and the Table
// still works.
func TestFailedBatchChangesNothing(t *testing.T) {
	requireRoot(t)
	ns, _ := newNS(t, "f")
	tbl := openTable(t, ns)
	want := []Rule{{Port: 80, ToPort: 1080}, {Port: 81, ToPort: 1081}}
	require.NoError(t, tbl.Sync(want))

	good, err := tbl.newRuleOp(Rule{Port: 82, ToPort: 1082})
	require.NoError(t, err)
	badMsg, err := nftMsg(unix.NFT_MSG_NEWRULE, netlink.Acknowledge|netlink.Create|netlink.Append, []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstr(tbl.Name())},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstr("nosuchchain")},
	})
	require.NoError(t, err)
	bad := op{msg: badMsg, what: "add rule to chain nosuchchain"}
	err = tbl.exchange(context.Background(), []op{tbl.flushChainOp(), good, bad})
	require.Error(t, err)
	assert.ErrorIs(t, err, unix.ENOENT)
	assert.Contains(t, err.Error(), "add rule to chain nosuchchain")
	t.Logf("rejected batch: %v", err)
	assert.Equal(t, want, dumpRules(t, ns, tbl.Name()), "flush and first rule must have been rolled back")

	require.NoError(t, tbl.Sync(want[1:]))
	assert.Equal(t, want[1:], dumpRules(t, ns, tbl.Name()))
}

func TestConcurrentSync(t *testing.T) {
	requireRoot(t)
	ns, _ := newNS(t, "c")
	tbl := openTable(t, ns)
	sets := make([][]Rule, 8)
	for i := range sets {
		for j := 0; j <= i; j++ {
			sets[i] = append(sets[i], Rule{Port: uint16(1000 + j), ToPort: uint16(2000 + i)})
		}
	}
	var wg sync.WaitGroup
	for _, set := range sets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				assert.NoError(t, tbl.Sync(set))
			}
		}()
	}
	wg.Wait()
	assert.Contains(t, sets, dumpRules(t, ns, tbl.Name()), "final rules must be exactly one caller's set")
}

// TestOwnerRemovesTableOnSIGKILL is the reason for the owner flag: a killed
// agent must not leave its redirect behind.
//
// Observed on Linux 6.18: the table is already gone when wait() returns.
// That is expected from the kernel code: the SIGKILLed process closes its
// files in do_exit before it becomes a zombie, and the netlink release
// notifier deletes owned tables synchronously. The test still allows up to
// 1 s and logs which case happened.
func TestOwnerRemovesTableOnSIGKILL(t *testing.T) {
	n := newTestNet(t)
	serve(t, n.b, "tcp", appPort, "app")
	serve(t, n.b, "tcp", agentPort, "agent")
	name := tableName()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperNSEnv+"="+n.b.Path(), helperTableEnv+"="+name)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		stdin.Close()
	})

	ready := make(chan string, 1)
	go func() {
		buf := make([]byte, 6)
		_, err := io.ReadFull(stdout, buf)
		if err != nil {
			ready <- "error: " + err.Error()
			return
		}
		ready <- string(buf)
	}()
	select {
	case got := <-ready:
		require.Equal(t, "ready\n", got, "helper did not start")
	case <-time.After(20 * time.Second):
		t.Fatal("helper did not become ready")
	}

	dst := netip.AddrPortFrom(n.bIPs[0], appPort)
	server, _ := ask(t, n.a, dst)
	require.Equal(t, "agent", server, "helper's redirect is active")
	info, ok := findTable(t, n.b, name)
	require.True(t, ok)
	require.NotZero(t, info.flags&tableFlagOwner)

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	err = cmd.Wait()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "wait: %v", err)
	require.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal())

	_, present := findTable(t, n.b, name)
	if present {
		t.Log("owned table still present right after the helper was reaped; polling")
		require.NoError(t, poll.Until(t.Context(), time.Second, func() error {
			if _, present := findTable(t, n.b, name); present {
				return errors.New("owned table still present")
			}
			return nil
		}), "owned table survived its owner by more than 1 s")
	} else {
		t.Log("owned table was gone as soon as the killed helper was reaped")
	}
	assert.NotContains(t, tableNames(t, n.b), name)

	server, _ = ask(t, n.a, dst)
	assert.Equal(t, "app", server, "traffic reaches the app directly once the owner is dead")

	// The name is free for the next agent.
	tbl, err := Open(context.Background(), n.b, name)
	require.NoError(t, err)
	require.NoError(t, tbl.Close())
}

func BenchmarkSync(b *testing.B) {
	requireRoot(b)
	ns, _ := newNS(b, "s")
	tbl := openTable(b, ns)
	rules := []Rule{{80, 15001}, {443, 15002}, {8080, 15003}, {9090, 15004}}
	b.ReportAllocs()
	for b.Loop() {
		if err := tbl.Sync(rules); err != nil {
			b.Fatal(err)
		}
	}
}
