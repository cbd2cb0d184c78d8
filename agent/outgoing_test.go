package agent_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
)

// redisCommand sends one inline command and reads one reply line.
func redisCommand(t *testing.T, conn net.Conn, r *bufio.Reader, cmd string) string {
	t.Helper()
	if _, err := io.WriteString(conn, cmd+"\r\n"); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err == nil && strings.HasPrefix(line, "$") { // bulk string: the value is on the next line
		line, err = r.ReadString('\n')
	}
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return strings.TrimSpace(line)
}

func TestOutgoingTCPLeavesFromTarget(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	ctx := testCtx(t)
	redisAddr := netip.AddrPortFrom(localenv.RedisIP, localenv.RedisPort).String()

	// Only the target's network can reach Redis: the test process cannot.
	var d net.Dialer
	if _, err := d.DialContext(ctx, "tcp", redisAddr); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("precondition: direct dial from the test should be unreachable, got %v", err)
	}

	conn, err := c.DialContext(ctx, "tcp", redisAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.LocalAddr().String(); !strings.HasPrefix(got, localenv.AppIP.String()+":") {
		t.Errorf("local address %s is not the target's %s", got, localenv.AppIP)
	}
	r := bufio.NewReader(conn)
	if got := redisCommand(t, conn, r, "PING"); got != "+PONG" {
		t.Fatalf("PING = %q", got)
	}
	redisCommand(t, conn, r, "SET remocal agent")
	// Redis sees the client at the target's address.
	if got := redisCommand(t, conn, r, "CLIENT INFO"); !strings.Contains(got, "addr="+localenv.AppIP.String()) {
		t.Errorf("redis sees the client as %q, want the target's address", got)
	}

	// Half-close: the server's reply still arrives after our EOF.
	conn2, err := c.DialContext(ctx, "tcp", redisAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	io.WriteString(conn2, "GET remocal\r\n")
	if err := conn2.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(conn2)
	if err != nil || string(reply) != "$5\r\nagent\r\n" {
		t.Errorf("reply after half-close = %q, %v", reply, err)
	}
}

func TestDialErrorsCarryErrno(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	ctx := testCtx(t)

	_, err := c.DialContext(ctx, "tcp", netip.AddrPortFrom(localenv.RedisIP, 1).String())
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeConnection || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("closed port: want connection_failed with ECONNREFUSED, got %v", err)
	}
	// The target has no route out of its network.
	_, err = c.DialContext(ctx, "tcp", "192.0.2.1:80")
	if !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("address outside the target's network: want ENETUNREACH, got %v", err)
	}
	if _, err := c.DialContext(ctx, "tcp", "redis:6379"); wire.CodeOf(err) != wire.CodeInvalid {
		t.Errorf("hostname: want invalid_request (names are resolved by the client), got %v", err)
	}
	// Failed dials leave the client usable.
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDNSThroughTarget(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	ctx := testCtx(t)

	res, err := c.Resolver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ns := res.Nameservers(); len(ns) != 1 || ns[0] != localenv.DNSIP {
		t.Fatalf("nameservers = %v, want the pod's %v", ns, localenv.DNSIP)
	}
	for _, tcp := range []bool{false, true} {
		res.TCP = tcp
		for name, want := range map[string]netip.Addr{
			"redis":                     localenv.RedisIP, // short name through the search list
			"inventory.demo":            localenv.AppIP,
			localenv.RedisDNSName + ".": localenv.RedisIP, // fully qualified
			localenv.HostsOnlyName:      localenv.HostsOnlyIP,
			"legacy-billing.internal.":  localenv.HostsOnlyIP,
		} {
			addrs, err := res.LookupHost(ctx, name)
			if err != nil || len(addrs) == 0 || addrs[0] != want {
				t.Errorf("tcp=%v: LookupHost(%q) = %v, %v; want %v", tcp, name, addrs, err, want)
			}
		}
		if _, err := res.LookupHost(ctx, "nosuch.demo.svc.cluster.local."); !errors.Is(err, agentclient.ErrNotFound) {
			t.Errorf("tcp=%v: unknown cluster name: want ErrNotFound, got %v", tcp, err)
		}
		// Outside its zone dnsmasq refuses rather than denies; either way
		// the lookup fails and says which name.
		if _, err := res.LookupHost(ctx, "nosuch"); err == nil || !strings.Contains(err.Error(), "nosuch") {
			t.Errorf("tcp=%v: unknown short name: want an error naming it, got %v", tcp, err)
		}
	}
}

func TestOutgoingUDP(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()

	// A UDP echo server in the peer pod.
	ns, err := env.Peer.NS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	pc, err := ns.ListenPacket(ctx, "udp", localenv.PeerIP.String()+":7007")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	seen := make(chan net.Addr, 4)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			seen <- from
			pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()

	conn, err := c.DialContext(ctx, "udp", localenv.PeerIP.String()+":7007")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, msg := range []string{"one", "two"} {
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		n, err := conn.Read(buf)
		if err != nil || string(buf[:n]) != "echo:"+msg {
			t.Fatalf("datagram reply = %q, %v", buf[:n], err)
		}
		if from := <-seen; !strings.HasPrefix(from.String(), localenv.AppIP.String()+":") {
			t.Errorf("the peer saw the datagram from %v, want the target's address", from)
		}
	}
}
