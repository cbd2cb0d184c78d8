package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
)

// Programs that do not resolve or connect the way glibc and Go do: musl's
// resolver sends its queries with sendto on an unconnected UDP socket and
// accepts replies only from the address it sent to; busybox carries its
// own nslookup. Each must see the target's names and network.

// muslprobe builds testdata/muslprobe with `musl-gcc -static` (a fraction
// of a second) into the test's directory.
func muslprobe(t *testing.T) string {
	t.Helper()
	cc := requireTool(t, "musl-gcc")
	path := filepath.Join(t.TempDir(), "muslprobe")
	out, err := exec.Command(cc, "-static", "-O2", "-Wall", "-Werror", "-o", path,
		filepath.Join("testdata", "muslprobe", "muslprobe.c")).CombinedOutput()
	if err != nil {
		t.Fatalf("musl-gcc: %v\n%s", err, out)
	}
	return path
}

// TestMuslResolvesClusterNames: a static musl program resolves a cluster
// name with the target's DNS and connects to it; also with outgoing UDP
// off, since DNS is the target's either way.
func TestMuslResolvesClusterNames(t *testing.T) {
	env := envtest.New(t)
	probe := muslprobe(t)
	noUDP := filepath.Join(t.TempDir(), "no-udp.json")
	if err := os.WriteFile(noUDP, []byte(`{"network": {"outgoing": {"udp": false}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, flags := range map[string][]string{
		"default": {"--no-incoming"},
		"udp-off": {"--no-incoming", "-f", noUDP},
	} {
		t.Run(name, func(t *testing.T) {
			r := execIn(t, env, flags, probe, "resolve", "redis", strconv.Itoa(localenv.RedisPort))
			if r.Code != 0 {
				t.Fatalf("muslprobe exit %d", r.Code)
			}
			mustContain(t, "muslprobe output", r.Stdout, "resolved redis "+localenv.RedisIP.String(), "resolve reply +PONG")
		})
	}
}

// udpEcho answers every datagram on the peer pod's port with the sender's
// address and the payload.
func udpEcho(t *testing.T, env *localenv.Env, port int) {
	t.Helper()
	ns, err := env.Peer.NS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	pc, err := ns.ListenPacket(context.Background(), "udp", net.JoinHostPort(localenv.PeerIP.String(), strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo from "+from.(*net.UDPAddr).IP.String()+": "), buf[:n]...), from)
		}
	}()
}

func TestUnconnectedUDPRepliesFromDestination(t *testing.T) {
	env := envtest.New(t)
	udpEcho(t, env, 7007)
	r := execIn(t, env, []string{"--no-incoming"}, muslprobe(t), "udp", localenv.PeerIP.String(), "7007")
	if r.Code != 0 {
		t.Fatalf("muslprobe exit %d", r.Code)
	}
	from := localenv.PeerIP.String() + ":7007"
	mustContain(t, "muslprobe output", r.Stdout,
		"recvfrom from "+from+": echo from "+localenv.AppIP.String()+": one",
		"recvmsg from "+from+": echo from "+localenv.AppIP.String()+": two",
		"sendmmsg from "+from+": echo from "+localenv.AppIP.String()+": three",
		"sendmmsg from "+from+": echo from "+localenv.AppIP.String()+": four")
}

// TestBlockedReceiveTakesSignals: a thread waiting in recvfrom on a
// socket that sent through the target (the supervisor waits for it) still
// gets its signals: SIGALRM without SA_RESTART interrupts the call.
func TestBlockedReceiveTakesSignals(t *testing.T) {
	env := envtest.New(t)
	r := execIn(t, env, []string{"--no-incoming"}, muslprobe(t), "udpwait", localenv.PeerIP.String(), "7009")
	if r.Code != 0 {
		t.Fatalf("muslprobe exit %d", r.Code)
	}
	mustContain(t, "muslprobe output", r.Stdout, "recvfrom: EINTR")
}

func TestBusyboxNslookupAndWget(t *testing.T) {
	env := envtest.New(t)
	bb := requireTool(t, "busybox")
	// Fully qualified: busybox's nslookup reports every name of the
	// search list it fails to find with exit status 1.
	r := execIn(t, env, []string{"--no-incoming"}, bb, "nslookup", localenv.RedisDNSName+".")
	if r.Code != 0 {
		t.Fatalf("nslookup exit %d", r.Code)
	}
	mustContain(t, "nslookup output", r.Stdout, localenv.RedisIP.String())
	r = execIn(t, env, []string{"--no-incoming"}, bb, "wget", "-q", "-O", "-", fmt.Sprintf("http://inventory:%d/", localenv.AppPort))
	if r.Code != 0 {
		t.Fatalf("wget exit %d", r.Code)
	}
	mustContain(t, "wget output", r.Stdout, localenv.AppGreeting)
}

// TestPreparedTCPSockets: connections that do not start with a plain
// connect go through the target too: TCP Fast Open by sendto, a
// TCP_FASTOPEN_CONNECT socket, one bound (with SO_REUSEPORT) before
// connecting, and one bound to a device. Only the target reaches Redis.
func TestPreparedTCPSockets(t *testing.T) {
	env := envtest.New(t)
	probe := muslprobe(t)
	dev := testDevice(t)
	redis, port := localenv.RedisIP.String(), strconv.Itoa(localenv.RedisPort)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"tfo", []string{"tfo", redis, port}},
		{"tfoconnect", []string{"tfoconnect", redis, port}},
		{"bindconnect", []string{"bindconnect", redis, port}},
		{"devconnect", []string{"devconnect", dev, redis, port}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := execIn(t, env, []string{"--no-incoming"}, append([]string{probe}, tc.args...)...)
			if r.Code != 0 {
				t.Fatalf("muslprobe exit %d", r.Code)
			}
			mustContain(t, "muslprobe output", r.Stdout, tc.name+" reply +PONG")
		})
	}
}

// testDevice adds a veth pair to the test's own network namespace (never
// the machine's) for SO_BINDTODEVICE, and returns one end's name.
func testDevice(t *testing.T) string {
	t.Helper()
	self, err1 := os.Readlink("/proc/self/ns/net")
	init, err2 := os.Readlink("/proc/1/ns/net")
	// /proc/1 may be unreadable here; then compare with our parent test
	// process, which RunIsolated left in the machine's namespace.
	if err2 != nil || init == "" {
		init, err2 = os.Readlink(fmt.Sprintf("/proc/%d/ns/net", os.Getppid()))
	}
	if err1 != nil || err2 != nil || self == init {
		t.Fatalf("the test must run in an isolated network namespace (self %q, init %q)", self, init)
	}
	name := "rmcdev" + strconv.Itoa(os.Getpid()%10000)
	if out, err := exec.Command("ip", "link", "add", name, "type", "veth", "peer", "name", name+"p").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	if out, err := exec.Command("ip", "link", "set", name, "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set up: %v\n%s", err, out)
	}
	return name
}
