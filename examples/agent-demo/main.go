// Command agent-demo shows a remocal agent serving a target in a "remote"
// environment built from network namespaces (test/localenv): environment
// variables, files, DNS, outgoing connections, and mirrored and stolen
// incoming traffic, each coming from the target rather than this machine.
// It speaks the agent protocol directly with the Go client; `remocal exec`
// will do the same for any program.
//
// Run it with `make demo` (root). It removes everything it created on exit
// and on Ctrl-C.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/remocal/remocal/agent/client"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/localenv"
)

func main() {
	os.Exit(localenv.RunIsolated(run))
}

func run() int {
	bin := flag.String("remocal", "bin/remocal", "the remocal binary that runs the agent (make build)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "agent-demo: needs root to build network namespaces; run: sudo make demo")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{bin: *bin}
	err := d.run(ctx)
	d.cleanup()
	switch {
	case err == nil:
		fmt.Println("\nAll of it came from the target; everything the demo created is gone.")
		return 0
	case ctx.Err() != nil:
		fmt.Println("\nInterrupted; everything the demo created is gone.")
		return 130
	default:
		fmt.Fprintf(os.Stderr, "\nagent-demo: %v\n", err)
		return 1
	}
}

type demo struct {
	bin       string
	env       *localenv.Env
	agent     *exec.Cmd
	agentAddr string
	c         *client.Client
	local     *http.Server
	cleanFn   []func()
}

func (d *demo) cleanup() {
	for i := len(d.cleanFn) - 1; i >= 0; i-- {
		d.cleanFn[i]()
	}
}

func (d *demo) onCleanup(f func()) { d.cleanFn = append(d.cleanFn, f) }

func section(n int, title string) { fmt.Printf("\n%d. %s\n", n, title) }

func say(format string, args ...any) { fmt.Printf("   "+format+"\n", args...) }

func (d *demo) run(ctx context.Context) error {
	fmt.Println("remocal demo: an agent serving a target in a \"remote\" environment (network namespaces, no cluster)")
	start := time.Now()
	env, err := localenv.Start(ctx, localenv.Options{})
	if err != nil {
		return fmt.Errorf("build the demo environment: %w", err)
	}
	d.env = env
	d.onCleanup(func() { env.Close() })
	say("built in %v:", time.Since(start).Round(time.Millisecond))
	say("  %-16s %-12s the target: examples/inventory on :%d, pid %d", env.App.Hostname, localenv.AppIP, localenv.AppPort, env.App.PID)
	say("  %-16s %-12s Redis", "redis", localenv.RedisIP)
	say("  %-16s %-12s dnsmasq for *.%s.svc.cluster.local", "dns", localenv.DNSIP, localenv.KubeNamespace)
	say("  %-16s %-12s another pod that sends traffic to the target", "peer", localenv.PeerIP)
	var dialer net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = dialer.DialContext(dctx, "tcp", fmt.Sprintf("%s:%d", localenv.RedisIP, localenv.RedisPort))
	cancel()
	say("this process cannot reach that network itself: dial %s:%d -> %v", localenv.RedisIP, localenv.RedisPort, err)

	steps := []func(context.Context) error{d.startAgent, d.showEnv, d.showFiles, d.showDNS, d.showOutgoing, d.showMirror, d.showSteal, d.showFilteredSteal}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) startAgent(ctx context.Context) error {
	section(1, "The agent")
	bin, err := filepath.Abs(d.bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s not found: build it first with make build (or pass -remocal PATH)", d.bin)
	}
	dir, err := os.MkdirTemp("", "remocal-demo")
	if err != nil {
		return err
	}
	d.onCleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	args := []string{"agent", "--target-pid", fmt.Sprint(d.env.App.PID), "--listen", "unix:" + sock, "--log-level", "warn"}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the agent: %w", err)
	}
	d.agent = cmd
	d.onCleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("the agent did not start: %w", err)
	}
	addr := strings.TrimPrefix(strings.TrimSpace(line), "remocal-agent listening on ")
	d.agentAddr = addr
	say("$ remocal %s", strings.Join(args, " "))
	say("%s", strings.TrimSpace(line))
	host, _ := os.Hostname()
	c, err := client.Dial(ctx, addr, client.Options{Name: "demo@" + host, Version: "demo"})
	if err != nil {
		return err
	}
	d.c = c
	d.onCleanup(func() { c.Close() })
	w := c.Welcome()
	say("connected: target %s, hostname %q (this machine is %q), protocol %s", w.Target.Name, w.Target.Hostname, host, w.Protocol)
	return nil
}

func (d *demo) showEnv(ctx context.Context) error {
	section(2, "Environment variables, read from the target process")
	vars, err := d.c.Env(ctx, []string{"SERVICE_NAME;GREETING;REDIS_ADDR;API_*"}, nil)
	if err != nil {
		return err
	}
	for _, k := range []string{"SERVICE_NAME", "GREETING", "REDIS_ADDR", "API_TOKEN"} {
		say("%s=%s", k, vars[k])
	}
	say("(your shell has API_TOKEN=%q)", os.Getenv("API_TOKEN"))
	return nil
}

func (d *demo) showFiles(ctx context.Context) error {
	section(3, "Files, read from the target's filesystem")
	cfg, err := d.c.ReadFile(ctx, localenv.AppConfigPath)
	if err != nil {
		return err
	}
	var compact bytes.Buffer
	if json.Compact(&compact, cfg) != nil {
		compact.Write(bytes.TrimSpace(cfg))
	}
	say("%s: %s", localenv.AppConfigPath, compact.String())
	_, err = os.Stat(localenv.AppConfigPath)
	say("on this machine: %v", err)
	st, err := d.c.Stat(ctx, localenv.AppConfigPath)
	if err != nil {
		return err
	}
	say("stat: %d bytes, mode %#o", st.Size, st.Mode&0o7777)
	return nil
}

func (d *demo) showDNS(ctx context.Context) error {
	section(4, "DNS, resolved with the target's resolv.conf and hosts, queried from inside its network")
	res, err := d.c.Resolver(ctx)
	if err != nil {
		return err
	}
	say("target nameservers %v, search %v", res.Nameservers(), res.Search())
	for _, name := range []string{"redis", localenv.AppDNSName, localenv.HostsOnlyName} {
		addrs, err := res.LookupHost(ctx, name)
		if err != nil {
			return err
		}
		say("%-34s -> %v", name, addrs)
	}
	_, err = net.DefaultResolver.LookupHost(ctx, "redis."+localenv.KubeNamespace+".svc.cluster.local")
	say("this machine's own resolver: %v", err)
	return nil
}

func (d *demo) showOutgoing(ctx context.Context) error {
	section(5, "Outgoing connections, dialled from the target's network")
	res, err := d.c.Resolver(ctx)
	if err != nil {
		return err
	}
	addrs, err := res.LookupHost(ctx, "redis")
	if err != nil {
		return err
	}
	conn, err := d.c.DialContext(ctx, "tcp", fmt.Sprintf("%s:%d", addrs[0], localenv.RedisPort))
	if err != nil {
		return err
	}
	defer conn.Close()
	say("connected to redis:%d from %s (the target's address)", localenv.RedisPort, conn.LocalAddr())
	r := bufio.NewReader(conn)
	for _, cmd := range []string{"PING", "RPUSH items demo-widget", "LRANGE items 0 -1"} {
		fmt.Fprintf(conn, "%s\r\n", cmd)
		reply, err := readRESP(r)
		if err != nil {
			return err
		}
		say("redis> %-22s %s", cmd, reply)
	}
	return nil
}

// readRESP renders one Redis reply on one line.
func readRESP(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSpace(line)
	switch {
	case strings.HasPrefix(line, "*"):
		var n int
		fmt.Sscanf(line, "*%d", &n)
		var items []string
		for range n {
			item, err := readRESP(r)
			if err != nil {
				return "", err
			}
			items = append(items, item)
		}
		return "[" + strings.Join(items, " ") + "]", nil
	case strings.HasPrefix(line, "$"):
		v, err := r.ReadString('\n')
		return strings.TrimSpace(v), err
	}
	return line, nil
}

// startLocal runs the stand-in for the developer's local process.
func (d *demo) startLocal() (string, chan string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	got := make(chan string, 16)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Method + " " + r.URL.Path
		w.Header().Set("X-Served-By", "your-laptop")
		fmt.Fprintf(w, "answered by your local process\n")
	})}
	go srv.Serve(l)
	d.onCleanup(func() { srv.Close() })
	return l.Addr().String(), got, nil
}

func (d *demo) peerGet(ctx context.Context, path string, header http.Header) (string, string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s:%d%s", localenv.AppIP, localenv.AppPort, path), nil)
	if err != nil {
		return "", "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := d.env.HTTP(d.env.Peer).Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(body)), resp.Header.Get("X-Served-By"), err
}

func waitFor(ctx context.Context, got chan string) (string, error) {
	select {
	case s := <-got:
		return s, nil
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(10 * time.Second):
		return "", errors.New("the local process received nothing")
	}
}

func (d *demo) showMirror(ctx context.Context) error {
	section(6, "Incoming traffic, mirrored: the target answers, your process gets a copy")
	addr, got, err := d.startLocal()
	if err != nil {
		return err
	}
	sub, err := d.c.Subscribe(ctx, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeMirror}, client.ForwardTo(addr))
	if err != nil {
		return err
	}
	defer sub.Close(ctx)
	body, by, err := d.peerGet(ctx, "/", nil)
	if err != nil {
		return err
	}
	say("peer pod: GET http://%s:%d/ -> %q (served by %s)", localenv.AppIP, localenv.AppPort, body, by)
	copied, err := waitFor(ctx, got)
	if err != nil {
		return err
	}
	say("your local process on %s received a copy: %s", addr, copied)
	return nil
}

func (d *demo) showSteal(ctx context.Context) error {
	section(7, "Incoming traffic, stolen: your process answers instead of the target")
	addr, got, err := d.startLocal()
	if err != nil {
		return err
	}
	sub, err := d.c.Subscribe(ctx, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, client.ForwardTo(addr))
	if err != nil {
		return err
	}
	body, by, err := d.peerGet(ctx, "/items", nil)
	if err != nil {
		return err
	}
	say("peer pod: GET /items -> %q (served by %s)", body, by)
	if _, err := waitFor(ctx, got); err != nil {
		return err
	}
	if err := sub.Close(ctx); err != nil {
		return err
	}
	body, by, err = d.peerGet(ctx, "/", nil)
	if err != nil {
		return err
	}
	say("after unsubscribing: GET / -> %q (served by %s)", body, by)
	return nil
}

func (d *demo) showFilteredSteal(ctx context.Context) error {
	section(8, "Incoming traffic, stolen by HTTP filter: only your requests come to you")
	addr, _, err := d.startLocal()
	if err != nil {
		return err
	}
	filter := &wire.HTTPFilter{Headers: map[string]string{"X-Remocal-User": "demo"}}
	sub, err := d.c.Subscribe(ctx, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal, Filter: filter}, client.ForwardTo(addr))
	if err != nil {
		return err
	}
	defer sub.Close(ctx)
	say("subscribed: steal port %d where %s", localenv.AppPort, filter)
	for _, user := range []string{"demo", "someone-else"} {
		body, by, err := d.peerGet(ctx, "/", http.Header{"X-Remocal-User": {user}})
		if err != nil {
			return err
		}
		say("GET / with X-Remocal-User: %-13s -> %q (served by %s)", user, body, by)
	}
	// A second client cannot take the whole port while the filter is held.
	other, err := client.Dial(ctx, d.agentAddr, client.Options{Name: "teammate@desk"})
	if err != nil {
		return err
	}
	defer other.Close()
	_, err = other.Subscribe(ctx, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, client.ForwardTo(addr))
	say("a teammate's unfiltered steal of the same port is refused:\n     %v", err)
	return nil
}
