package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
)

// Dynamically linked programs from Debian: glibc's resolver (nsswitch,
// resolv.conf with use-vc), interpreters and their children.

func TestCurl(t *testing.T) {
	env := envtest.New(t)
	curl := requireTool(t, "curl")
	r := execIn(t, env, []string{"--no-incoming"}, curl, "-sS", "--max-time", "20",
		fmt.Sprintf("http://inventory:%d/", localenv.AppPort),
		"file://"+localenv.AppConfigPath)
	if r.Code != 0 {
		t.Fatalf("curl exit %d", r.Code)
	}
	mustContain(t, "curl output", r.Stdout, localenv.AppGreeting, env.App.Hostname, `"environment": "remote"`)
}

const pythonScript = `
import os, socket, subprocess, sys
print("env", os.environ["API_TOKEN"])
print("hostname", socket.gethostname())
print("file", "remote" if '"environment": "remote"' in open("/etc/inventory/config.json").read() else "local")
print("stat", os.stat("/etc/inventory/config.json").st_size)
print("exists", os.path.exists("/etc/inventory/nope"))
print("resolve", socket.gethostbyname("redis"), socket.gethostbyname("legacy-billing.internal"))
s = socket.create_connection(("redis.demo.svc.cluster.local", 6379), timeout=20)
s.sendall(b"PING\r\n")
print("redis", s.recv(100).decode().strip(), s.getpeername()[0])
print("child", "remote" if '"remote"' in subprocess.run(["cat", "/etc/inventory/config.json"], capture_output=True, text=True).stdout else "local")
`

func TestPython(t *testing.T) {
	env := envtest.New(t)
	py := requireTool(t, "python3")
	r := execIn(t, env, []string{"--no-incoming"}, py, "-c", pythonScript)
	if r.Code != 0 {
		t.Fatalf("python exit %d", r.Code)
	}
	mustContain(t, "python output", r.Stdout,
		"env "+localenv.AppAPIToken,
		"hostname "+env.App.Hostname,
		"file remote",
		"exists False",
		"resolve "+localenv.RedisIP.String()+" "+localenv.HostsOnlyIP.String(),
		"redis +PONG "+localenv.RedisIP.String(),
		"child remote", // cat, a child, reads the remote file too
	)
}

const nodeScript = `
const fs = require("fs"), dns = require("dns"), net = require("net"), os = require("os");
console.log("env", process.env.API_TOKEN);
console.log("hostname", os.hostname());
console.log("file", fs.readFileSync("/etc/inventory/config.json", "utf8").includes('"remote"'));
dns.lookup("redis", (err, addr) => {
  console.log("resolve", err ? err.message : addr);
  const s = net.connect(6379, addr, () => s.write("PING\r\n"));
  s.on("data", d => { console.log("redis", d.toString().trim(), s.remoteAddress); s.end(); });
  s.on("error", e => { console.log("redis error", e.message); process.exit(1); });
});
`

func TestNode(t *testing.T) {
	env := envtest.New(t)
	node := requireTool(t, "node")
	r := execIn(t, env, []string{"--no-incoming"}, node, "-e", nodeScript)
	if r.Code != 0 {
		t.Fatalf("node exit %d", r.Code)
	}
	mustContain(t, "node output", r.Stdout,
		"env "+localenv.AppAPIToken, "hostname "+env.App.Hostname, "file true",
		"resolve "+localenv.RedisIP.String(), "redis +PONG "+localenv.RedisIP.String())
}

func TestOutgoingUDP(t *testing.T) {
	env := envtest.New(t)
	ns, err := env.Peer.NS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	pc, err := ns.ListenPacket(context.Background(), "udp", localenv.PeerIP.String()+":7007")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo from "+from.(*net.UDPAddr).IP.String()+": "), buf[:n]...), from)
		}
	}()
	r := execIn(t, env, []string{"--no-incoming"}, built(t, "probe"), "udp="+localenv.PeerIP.String()+":7007")
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	// The peer saw the datagram come from the target's address.
	mustContain(t, "probe output", r.Stdout, "echo from "+localenv.AppIP.String()+": hello")
}

func TestChildrenAreIntercepted(t *testing.T) {
	env := envtest.New(t)
	probe := built(t, "probe")
	r := execIn(t, env, []string{"--no-incoming"}, "sh", "-c",
		probe+" run="+probe+"+env=GREETING+read="+localenv.AppConfigPath+" && "+probe+" resolve=redis")
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	mustContain(t, "output", r.Stdout, "env GREETING="+localenv.AppGreeting, `"environment": "remote"`,
		"resolve redis: "+localenv.RedisIP.String())
}

func TestRemoteDirectoryListing(t *testing.T) {
	env := envtest.New(t)
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/root/etc/inventory/extra.json", env.App.PID), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := execIn(t, env, []string{"--no-incoming"}, built(t, "probe"), "ls=/etc/inventory")
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	mustContain(t, "output", r.Stdout, "ls /etc/inventory: config.json,extra.json")
}

// TestOutgoingFilterKeepsListedDestinationsLocal: a destination on the
// local list is dialled from this machine, which (isolated here) cannot
// reach it, while the rest still goes through the target.
func TestOutgoingFilterKeepsListedDestinationsLocal(t *testing.T) {
	env := envtest.New(t)
	cfg := filepath.Join(t.TempDir(), "outgoing.json")
	os.WriteFile(cfg, []byte(`{"network": {"outgoing": {"filter": {"local": ["`+localenv.RedisIP.String()+`/32"]}}, "incoming": {"mode": "off"}}}`), 0o644)
	probe := built(t, "probe")
	r := execIn(t, env, []string{"-f", cfg}, probe, "resolve=redis")
	mustContain(t, "output", r.Stdout, "resolve redis: "+localenv.RedisIP.String())
	r = execIn(t, env, []string{"-f", cfg}, probe, fmt.Sprintf("redis=%s:%d", localenv.RedisIP, localenv.RedisPort))
	if r.Code == 0 || !strings.Contains(r.Stdout, "network is unreachable") {
		t.Errorf("a local destination must be dialled locally (unreachable here): exit %d, %s", r.Code, r.Stdout)
	}
}
