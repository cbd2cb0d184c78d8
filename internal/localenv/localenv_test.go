package localenv_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
)

func TestMain(m *testing.M) { envtest.Main(m) }

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func httpGet(t *testing.T, e *localenv.Env, from *localenv.Pod, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxFor(t), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.HTTP(from).Do(req)
	if err != nil {
		t.Fatalf("%s %s from pod %s: %v", method, url, from.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func appURL(ip netip.Addr, path string) string {
	return "http://" + netip.AddrPortFrom(ip, localenv.AppPort).String() + path
}

// rawDNSQuery asks server for name's A records from inside pod, built by hand
// so that the test does not trust the package's own lookup code.
func rawDNSQuery(t *testing.T, e *localenv.Env, from *localenv.Pod, name string) (dnsmessage.RCode, []netip.Addr) {
	t.Helper()
	q := dnsmessage.Message{
		Header: dnsmessage.Header{ID: 0x4242, RecursionDesired: true},
		Questions: []dnsmessage.Question{{
			Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET,
		}},
	}
	packet, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.Dial(ctxFor(t), from, "udp", netip.AddrPortFrom(localenv.DNSIP, localenv.DNSPort).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(packet); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no DNS answer for %s: %v", name, err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if m.ID != 0x4242 || !m.Response {
		t.Fatalf("unexpected DNS message %+v", m.Header)
	}
	var ips []netip.Addr
	for _, a := range m.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			ips = append(ips, netip.AddrFrom4(r.A))
		}
	}
	return m.RCode, ips
}

func netnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	return string(out)
}

// TestEnv checks the shared environment from the outside, the way the agent
// and the tests of other packages will use it.
func TestEnv(t *testing.T) {
	e := envtest.New(t)
	t.Logf("Start took %v", e.StartDuration)

	t.Run("PeerGetsGreetingAndHostname", func(t *testing.T) {
		resp, body := httpGet(t, e, e.Peer, "GET", appURL(localenv.AppIP, "/"))
		want := fmt.Sprintf("inventory on %s: %s\n", e.App.Hostname, localenv.AppGreeting)
		if resp.StatusCode != 200 || body != want {
			t.Errorf("GET / = %d %q, want %q", resp.StatusCode, body, want)
		}
		if got := resp.Header.Get("X-Served-By"); got != e.App.Hostname {
			t.Errorf("X-Served-By = %q, want %q", got, e.App.Hostname)
		}
		if !strings.HasPrefix(e.App.Hostname, "inventory-") {
			t.Errorf("app hostname %q does not look like a pod name", e.App.Hostname)
		}
		host, _ := os.Hostname()
		if e.App.Hostname == host {
			t.Errorf("app has the host's hostname %q", host)
		}
	})

	t.Run("PIDIsTheAppItself", func(t *testing.T) {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", e.App.PID))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(filepath.Base(exe), "inventory") {
			t.Errorf("/proc/%d/exe = %s, want the inventory binary (not ip, sh or a wrapper)", e.App.PID, exe)
		}
		self, _ := os.Readlink("/proc/self/ns/net")
		pod, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", e.App.PID))
		if err != nil {
			t.Fatal(err)
		}
		ns, err := e.App.NS()
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		id, err := ns.ID()
		if err != nil {
			t.Fatal(err)
		}
		if pod == self || pod != fmt.Sprintf("net:[%d]", id) {
			t.Errorf("app netns %s, test's %s, pod's named namespace net:[%d]", pod, self, id)
		}
	})

	t.Run("PodFilesDifferFromHost", func(t *testing.T) {
		root := fmt.Sprintf("/proc/%d/root", e.App.PID)
		read := func(path string) string {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		resolv := read(root + "/etc/resolv.conf")
		for _, want := range []string{"nameserver 10.77.0.53", "search " + localenv.AppSearchDomains, "options ndots:5"} {
			if !strings.Contains(resolv, want) {
				t.Errorf("pod resolv.conf lacks %q:\n%s", want, resolv)
			}
		}
		if host := read("/etc/resolv.conf"); strings.Contains(host, "10.77.0.53") {
			t.Errorf("host resolv.conf mentions the pod's nameserver:\n%s", host)
		}
		if hosts := read(root + "/etc/hosts"); !strings.Contains(hosts, localenv.HostsOnlyIP.String()+"\t"+localenv.HostsOnlyName) {
			t.Errorf("pod /etc/hosts lacks %s:\n%s", localenv.HostsOnlyName, hosts)
		}
		if hosts := read("/etc/hosts"); strings.Contains(hosts, localenv.HostsOnlyName) {
			t.Errorf("host /etc/hosts has the pod-only name")
		}
		if got := strings.TrimSpace(read(root + "/etc/hostname")); got != e.App.Hostname {
			t.Errorf("pod /etc/hostname = %q, want %q", got, e.App.Hostname)
		}
		config := read(root + localenv.AppConfigPath)
		if _, err := os.Stat(localenv.AppConfigPath); err == nil {
			t.Logf("note: the host has %s too", localenv.AppConfigPath)
		}
		_, body := httpGet(t, e, e.Peer, "GET", appURL(localenv.AppIP, "/config"))
		if body != config || !strings.Contains(config, e.App.Hostname) {
			t.Errorf("GET /config = %q, pod file = %q", body, config)
		}
		// The rest of /etc is the host's.
		if _, err := os.Stat(root + "/etc/passwd"); err != nil {
			t.Errorf("pod lost the host's /etc/passwd: %v", err)
		}
	})

	t.Run("PodEnvironIsClean", func(t *testing.T) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", e.App.PID))
		if err != nil {
			t.Fatal(err)
		}
		vars := map[string]string{}
		for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		want := map[string]string{
			"API_TOKEN":    localenv.AppAPIToken,
			"GREETING":     localenv.AppGreeting,
			"SERVICE_NAME": localenv.AppServiceName,
			"REDIS_ADDR":   localenv.AppRedisAddr,
			"LISTEN_ADDR":  ":8080",
			"PATH":         localenv.PodPATH,
		}
		for k, v := range want {
			if vars[k] != v {
				t.Errorf("pod env %s = %q, want %q", k, vars[k], v)
			}
		}
		for k := range vars {
			if _, ok := want[k]; !ok {
				t.Errorf("pod env has unexpected %s=%q (leaked from the caller or a wrapper?)", k, vars[k])
			}
		}
	})

	t.Run("DNSAnswersFromPeer", func(t *testing.T) {
		for name, ip := range e.Names() {
			rcode, ips := rawDNSQuery(t, e, e.Peer, name)
			if name == localenv.HostsOnlyName {
				if len(ips) != 0 {
					t.Errorf("cluster DNS answers hosts-only name %s: %v", name, ips)
				}
				continue
			}
			if rcode != dnsmessage.RCodeSuccess || len(ips) != 1 || ips[0] != ip {
				t.Errorf("DNS %s = %v %v, want %s", name, rcode, ips, ip)
			}
		}
		if rcode, _ := rawDNSQuery(t, e, e.Peer, "nope.demo.svc.cluster.local"); rcode != dnsmessage.RCodeNameError {
			t.Errorf("unknown cluster name answered %v, want NXDOMAIN", rcode)
		}
	})

	t.Run("RedisPingFromPeer", func(t *testing.T) {
		c, err := e.Dial(ctxFor(t), e.Peer, "tcp", netip.AddrPortFrom(localenv.RedisIP, localenv.RedisPort).String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "*1\r\n$4\r\nPING\r\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "+PONG\r\n" {
			t.Fatalf("PING reply %q, %v", line, err)
		}
	})

	t.Run("DialByClusterName", func(t *testing.T) {
		c, err := e.Dial(ctxFor(t), e.Peer, "tcp", localenv.RedisDNSName+":6379")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := c.RemoteAddr().String(); got != "10.77.0.20:6379" {
			t.Errorf("dialled %s", got)
		}
	})

	t.Run("AppUsesRedisThroughClusterDNS", func(t *testing.T) {
		// REDIS_ADDR is a cluster name, so this exercises the pod's
		// resolv.conf (search list, ndots:5) and dnsmasq end to end.
		item := "widget-" + strconv.Itoa(os.Getpid())
		resp, body := httpGet(t, e, e.Peer, "POST", appURL(localenv.AppIP, "/items?name="+item))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /items = %d %q", resp.StatusCode, body)
		}
		resp, body = httpGet(t, e, e.Peer, "GET", appURL(localenv.AppIP, "/items"))
		if resp.StatusCode != 200 || !strings.Contains(body, `"`+item+`"`) {
			t.Fatalf("GET /items = %d %q", resp.StatusCode, body)
		}
	})

	t.Run("TestProcessCannotReachPods", func(t *testing.T) {
		for _, ip := range []netip.Addr{localenv.AppIP, localenv.PeerIP} {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(ip, localenv.AppPort).String(), 2*time.Second)
			if err == nil {
				c.Close()
				t.Fatalf("the test process reached %s directly", ip)
			}
			if !errors.Is(err, syscall.ENETUNREACH) {
				t.Errorf("dial %s: %v, want network is unreachable", ip, err)
			}
		}
	})

	t.Run("EchoShowsPeerAsClient", func(t *testing.T) {
		_, body := httpGet(t, e, e.Peer, "GET", appURL(localenv.AppIP, "/echo"))
		if !strings.Contains(body, `"remote_addr":"10.77.0.100:`) {
			t.Errorf("GET /echo = %s, want the peer's address as client", body)
		}
	})

	t.Run("FailedStartAppIsUndone", func(t *testing.T) {
		ip := netip.MustParseAddr("10.77.0.33")
		_, err := e.StartApp(ctxFor(t), "flaky", ip, map[string]string{"LISTEN_ADDR": "10.99.99.99:8080"})
		if err == nil || !strings.Contains(err.Error(), "listen on 10.99.99.99:8080") {
			t.Fatalf("StartApp with an unusable LISTEN_ADDR: %v", err)
		}
		if list := netnsList(t); strings.Contains(list, e.Prefix+"-flaky") {
			t.Errorf("failed pod's namespace remains:\n%s", list)
		}
		if _, err := os.Stat("/etc/netns/" + e.Prefix + "-flaky"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("failed pod's /etc/netns dir remains: %v", err)
		}
		p, err := e.StartApp(ctxFor(t), "flaky", ip, nil)
		if err != nil {
			t.Fatalf("retry with the same name and address: %v", err)
		}
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("KillClosesExited", func(t *testing.T) {
		ip := netip.MustParseAddr("10.77.0.31")
		p, err := e.StartApp(ctxFor(t), "victim", ip, map[string]string{"GREETING": "about to die"})
		if err != nil {
			t.Fatal(err)
		}
		_, body := httpGet(t, e, e.Peer, "GET", appURL(ip, "/"))
		if want := "inventory on " + p.Hostname + ": about to die\n"; body != want {
			t.Errorf("GET / on victim = %q, want %q", body, want)
		}
		select {
		case <-p.Exited():
			t.Fatal("Exited closed while the process runs")
		default:
		}
		if _, err := e.StartApp(ctxFor(t), "victim2", ip, nil); err == nil {
			t.Error("StartApp accepted an address already in use")
		}

		// The pod's /etc is writable like a container's; writes reach
		// the pod, not the host or /etc/netns.
		cfg := fmt.Sprintf("/proc/%d/root%s", p.PID, localenv.AppConfigPath)
		if err := os.WriteFile(cfg, []byte(`{"edited":true}`), 0o644); err != nil {
			t.Fatalf("edit the pod's config through /proc/PID/root: %v", err)
		}
		if _, body := httpGet(t, e, e.Peer, "GET", appURL(ip, "/config")); body != `{"edited":true}` {
			t.Errorf("GET /config after edit = %q", body)
		}
		orig, err := os.ReadFile(filepath.Join("/etc/netns", p.NetNSName, "inventory/config.json"))
		if err != nil || strings.Contains(string(orig), "edited") {
			t.Errorf("/etc/netns copy changed or unreadable: %q, %v", orig, err)
		}
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Exited():
		case <-time.After(5 * time.Second):
			t.Fatal("Exited not closed after Kill")
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.PID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("/proc/%d still exists after Kill: %v", p.PID, err)
		}
		if c, err := e.Dial(ctxFor(t), e.Peer, "tcp", netip.AddrPortFrom(ip, localenv.AppPort).String()); err == nil {
			c.Close()
			t.Error("killed app still accepts connections")
		}
		if err := p.Kill(); err != nil {
			t.Errorf("second Kill: %v", err)
		}
		// The shared app is unaffected.
		if resp, _ := httpGet(t, e, e.Peer, "GET", appURL(localenv.AppIP, "/healthz")); resp.StatusCode != 200 {
			t.Errorf("shared app unhealthy after killing the victim")
		}
	})
}

func TestCloseRemovesEverything(t *testing.T) {
	envtest.RequireRoot(t)
	e, err := localenv.Start(ctxFor(t), localenv.Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.StartApp(ctxFor(t), "extra", netip.MustParseAddr("10.77.0.32"), nil)
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	var names, pids []string
	for _, pod := range e.Pods() {
		names = append(names, pod.NetNSName)
		if pod.PID != 0 {
			pids = append(pids, strconv.Itoa(pod.PID))
		}
	}
	names = append(names, e.ClusterNetNSName)
	if len(names) != 6 || len(pids) != 4 || p.PID == 0 {
		t.Fatalf("pods %v, pids %v", names, pids)
	}
	list := netnsList(t)
	for _, n := range names {
		if !strings.Contains(list, n) {
			t.Fatalf("namespace %s missing while running: %s", n, list)
		}
	}

	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	list = netnsList(t)
	for _, n := range names {
		if strings.Contains(list, n) {
			t.Errorf("namespace %s survived Close:\n%s", n, list)
		}
		if _, err := os.Stat(filepath.Join("/etc/netns", n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("/etc/netns/%s survived Close: %v", n, err)
		}
	}
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + pid); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("process %s survived Close", pid)
		}
	}
	for _, pod := range []*localenv.Pod{e.App, e.Redis, e.DNS, p} {
		select {
		case <-pod.Exited():
		default:
			t.Errorf("pod %s: Exited not closed after Close", pod.Name)
		}
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestStartReapsLeftoversOfDeadProcesses(t *testing.T) {
	envtest.RequireRoot(t)
	leftover := func(n string) error {
		if out, err := exec.Command("ip", "netns", "add", n).CombinedOutput(); err != nil {
			return fmt.Errorf("ip netns add %s: %v: %s", n, err, out)
		}
		if err := os.MkdirAll(filepath.Join("/etc/netns", n), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join("/etc/netns", n, "resolv.conf"), []byte("nameserver 10.77.0.53\n"), 0o644)
	}
	// Our own pid is alive: an environment of this process (or a parallel
	// one) must never be reaped.
	live := fmt.Sprintf("rmc%d-99-untouchable", os.Getpid())
	if err := leftover(live); err != nil {
		t.Fatal(err)
	}
	// A pid that certainly belonged to a process that is gone now. Other
	// test processes running in parallel may legitimately reap these
	// leftovers while they are being made, so try a few times.
	var deadPrefix, stale string
	for attempt := 0; ; attempt++ {
		dead := exec.Command("true")
		if err := dead.Run(); err != nil {
			t.Fatal(err)
		}
		deadPrefix = fmt.Sprintf("rmc%d-", dead.Process.Pid)
		stale = deadPrefix + "app"
		err := leftover(stale)
		if err == nil {
			break
		}
		exec.Command("ip", "netns", "del", stale).Run()
		os.RemoveAll(filepath.Join("/etc/netns", stale))
		if attempt == 5 {
			t.Fatal(err)
		}
	}
	staleEtcOnly := deadPrefix + "etc-only"
	os.MkdirAll(filepath.Join("/etc/netns", staleEtcOnly), 0o755)
	t.Cleanup(func() {
		for _, n := range []string{stale, live, staleEtcOnly} {
			exec.Command("ip", "netns", "del", n).Run()
			os.RemoveAll(filepath.Join("/etc/netns", n))
		}
	})

	e := envtest.New(t)
	_ = e
	list := netnsList(t)
	if strings.Contains(list, stale) {
		t.Errorf("stale namespace %s survived Start:\n%s", stale, list)
	}
	for _, n := range []string{stale, staleEtcOnly} {
		if _, err := os.Stat(filepath.Join("/etc/netns", n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale /etc/netns/%s survived Start: %v", n, err)
		}
	}
	if !strings.Contains(list, live) {
		t.Errorf("namespace %s of a live process was reaped", live)
	}
	if _, err := os.Stat(filepath.Join("/etc/netns", live)); err != nil {
		t.Errorf("/etc/netns/%s of a live process was reaped: %v", live, err)
	}
}

func TestFailedStartCleansUpAndExplains(t *testing.T) {
	envtest.RequireRoot(t)
	bad := filepath.Join(t.TempDir(), "broken-app")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho 'config is on fire' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("rmc%d-fail", os.Getpid())
	e, err := localenv.Start(ctxFor(t), localenv.Options{Prefix: prefix, AppBinary: bad, Logf: t.Logf})
	if err == nil {
		e.Close()
		t.Fatal("Start succeeded with an app that exits at once")
	}
	t.Logf("Start error: %v", err)
	for _, want := range []string{"exited before it was ready", "exit status 3", "config is on fire"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if list := netnsList(t); strings.Contains(list, prefix) {
		t.Errorf("failed Start left namespaces:\n%s", list)
	}
	ents, _ := os.ReadDir("/etc/netns")
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), prefix) {
			t.Errorf("failed Start left /etc/netns/%s", d.Name())
		}
	}
}
