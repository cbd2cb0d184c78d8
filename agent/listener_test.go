package agent_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/poll"
)

// listeningSocket is a listening TCP socket of a pod's network namespace.
type listeningSocket struct {
	port  uint16
	inode string
}

// redirectListener finds the agent's redirect listener in the pod's network
// namespace: the listening TCP socket there that is not the application's.
// /proc/PID/net/tcp{,6} list the sockets of PID's network namespace.
func redirectListener(t *testing.T, pod *localenv.Pod) listeningSocket {
	t.Helper()
	var found []listeningSocket
	for _, f := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pod.PID, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" { // TCP_LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			port, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil {
				t.Fatalf("%s: bad local address %q", f, fields[1])
			}
			if port != localenv.AppPort {
				found = append(found, listeningSocket{port: uint16(port), inode: fields[9]})
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("listening sockets in pod %s besides the application's: %v, want exactly the agent's redirect listener", pod.Name, found)
	}
	return found[0]
}

// socketFD finds this process's descriptor of a socket by inode: the agent
// runs in the test process.
func socketFD(t *testing.T, inode string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && link == "socket:["+inode+"]" {
			fd, _ := strconv.Atoi(e.Name())
			return fd
		}
	}
	t.Fatalf("no descriptor of socket %s in the test process", inode)
	return -1
}

// lowerFileLimit caps this process's open descriptors for the test. The
// agent runs in the test process; were the listener attack to work again,
// the agent would exhaust them in a fraction of a second instead of eating
// the machine's memory on its way to the default limit.
func lowerFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = min(n, old.Cur)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
}

// waitFor waits with poll.Until until cond holds, failing t with what if
// it does not within timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := poll.Until(t.Context(), timeout, func() error {
		if !cond() {
			return errors.New(what)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestDirectConnectionsToRedirectListenerAreRefused is the attack of a pod
// (or a process in the target's own namespace) connecting straight to the
// agent's redirect listener while a teammate steals: such connections have
// no subscribed destination and once made the agent pass them "through" to
// the listener again, recursing until it ran out of descriptors, after which
// the listener was dead while the rules still sent the application's traffic
// to it. Now the guard rule drops them, the agent keeps serving, and its
// goroutines stay bounded.
func TestDirectConnectionsToRedirectListenerAreRefused(t *testing.T) {
	lowerFileLimit(t, 4096)
	env := envtest.New(t)
	ta := startAgent(t, env.App, agentOptions{})
	alice := connect(t, ta.addr, "alice@laptop")
	aliceLocal := newLocalServer(t, "alice")
	subscribe(t, alice, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal,
		Filter: &wire.HTTPFilter{Headers: map[string]string{"X-Remocal-User": "alice"}}}, aliceLocal.forwarder())
	assertFromLocal(t, env, "/items", hdr("X-Remocal-User", "alice"), "alice")
	assertFromApp(t, env, "/items", nil)

	lis := redirectListener(t, env.App)
	baseline := runtime.NumGoroutine()

	// Hammer the listener from the peer pod and from inside the app's own
	// namespace (its pod IP and loopback), concurrently with real traffic.
	targets := []struct {
		from *localenv.Pod
		addr string
	}{
		{env.Peer, netip.AddrPortFrom(localenv.AppIP, lis.port).String()},
		{env.App, netip.AddrPortFrom(localenv.AppIP, lis.port).String()},
		{env.App, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), lis.port).String()},
	}
	const workers, attempts = 12, 15
	var connected atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		target := targets[w%len(targets)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range attempts {
				ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
				conn, err := env.Dial(ctx, target.from, "tcp", target.addr)
				cancel()
				if err != nil {
					continue
				}
				connected.Add(1)
				fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", target.addr)
				conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				bufio.NewReader(conn).ReadByte()
				conn.Close()
			}
		}()
	}
	for i := range 5 { // the app answers /items, the local servers any path
		assertFromApp(t, env, "/items", nil)
		assertFromLocal(t, env, fmt.Sprintf("/during/%d", i), hdr("X-Remocal-User", "alice"), "alice")
	}
	wg.Wait()
	if n := connected.Load(); n != 0 {
		t.Errorf("%d of %d direct connections to the redirect listener (port %d) were accepted; want all dropped", n, workers*attempts, lis.port)
	}

	// The agent still serves the application's traffic and new
	// subscriptions.
	assertFromApp(t, env, "/items", nil)
	assertFromLocal(t, env, "/after", hdr("X-Remocal-User", "alice"), "alice")
	bob := connect(t, ta.addr, "bob@laptop")
	bobLocal := newLocalServer(t, "bob")
	subscribe(t, bob, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal,
		Filter: &wire.HTTPFilter{Headers: map[string]string{"X-Remocal-User": "bob"}}}, bobLocal.forwarder())
	assertFromLocal(t, env, "/after", hdr("X-Remocal-User", "bob"), "bob")

	// Nothing piled up: whatever the attack started has ended. The bound is
	// generous (HTTP keep-alive connections of the test's own clients), a
	// recursion makes thousands.
	waitFor(t, 10*time.Second, "goroutines stay above the baseline", func() bool {
		return runtime.NumGoroutine() <= baseline+40
	})
}

// TestRedirectListenerFailureGivesPortBack: if the redirect listener dies
// (here: shut down under the agent, so accept fails for good), the redirect
// table goes with it and the application answers on its port again; a
// later subscription redirects anew.
func TestRedirectListenerFailureGivesPortBack(t *testing.T) {
	env := envtest.New(t)
	ta := startAgent(t, env.App, agentOptions{})
	c := connect(t, ta.addr, "alice@laptop")
	local := newLocalServer(t, "alice")
	sub := subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, local.forwarder())
	assertFromLocal(t, env, "/", nil, "alice")

	lis := redirectListener(t, env.App)
	if err := unix.Shutdown(socketFD(t, lis.inode), unix.SHUT_RDWR); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the redirect table outlived its listener", func() bool {
		return len(remocalTables(t, env.App)) == 0
	})
	assertFromApp(t, env, "/", nil)

	// Subscribing again restores the redirect on a new listener.
	if err := sub.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, local.forwarder())
	assertFromLocal(t, env, "/again", nil, "alice")
	if again := redirectListener(t, env.App); again.inode == lis.inode {
		t.Errorf("the redirect still uses the dead listener %v", lis)
	}
}
