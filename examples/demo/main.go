// Command demo is what `make demo` runs: your local copy of a service runs
// under `remocal exec` as if it were inside a pod of a "remote" environment
// built from network namespaces (internal/localenv), and the demo shows, step
// by step, that its environment, files, DNS, outgoing connections and
// incoming traffic are the pod's. It removes everything it created on exit
// and on Ctrl-C.
package main

import (
	"bufio"
	"context"
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

	"github.com/remocal/remocal/internal/localenv"
)

func main() { os.Exit(localenv.RunIsolated(run)) }

func run() int {
	bin := flag.String("remocal", "bin/remocal", "the remocal binary (make build)")
	inventory := flag.String("inventory", "bin/inventory", "your local build of examples/inventory (make build)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: needs root to build network namespaces; run: sudo make demo")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{}
	var err error
	if d.remocal, err = absExisting(*bin); err == nil {
		d.inventory, err = absExisting(*inventory)
	}
	if err == nil {
		err = d.run(ctx)
	}
	d.cleanup()
	switch {
	case err == nil:
		fmt.Println("\nEverything above came from the pod; everything the demo created is gone.")
		return 0
	case ctx.Err() != nil:
		fmt.Println("\nInterrupted; everything the demo created is gone.")
		return 130
	default:
		fmt.Fprintf(os.Stderr, "\ndemo: %v\n", err)
		return 1
	}
}

func absExisting(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("%s not found: build it first with make build (or pass its path)", p)
	}
	return abs, nil
}

type demo struct {
	remocal, inventory string
	env                *localenv.Env
	project            string
	cleanups           []func()
}

func (d *demo) onCleanup(f func()) { d.cleanups = append(d.cleanups, f) }

func (d *demo) cleanup() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
}

func section(n int, title string)    { fmt.Printf("\n%d. %s\n", n, title) }
func say(format string, args ...any) { fmt.Printf("   "+format+"\n", args...) }

// projectConfig is what a developer would commit as .remocal/config.json.
const projectConfig = `{
  // The app reads its config from /etc/inventory in the pod.
  "fs": {"remote": ["/etc/inventory"]},
  // Tell your copy apart from the pod's when it answers.
  "env": {"override": {"GREETING": "hello from your laptop"}}
}
`

func (d *demo) run(ctx context.Context) error {
	fmt.Println("remocal demo: your local copy of a service runs as if it were inside the pod")
	start := time.Now()
	env, err := localenv.Start(ctx, localenv.Options{})
	if err != nil {
		return fmt.Errorf("build the demo environment: %w", err)
	}
	d.env = env
	d.onCleanup(func() { env.Close() })
	say("a \"remote\" environment built in %v from network namespaces:", time.Since(start).Round(time.Millisecond))
	say("  %-15s %-12s the pod: examples/inventory on :%d (pid %d)", env.App.Hostname, localenv.AppIP, localenv.AppPort, env.App.PID)
	say("  %-15s %-12s Redis, known as %s", "redis", localenv.RedisIP, localenv.RedisDNSName)
	say("  %-15s %-12s the cluster's DNS", "dns", localenv.DNSIP)
	say("  %-15s %-12s another pod that calls the service", "peer", localenv.PeerIP)
	var dialer net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = dialer.DialContext(dctx, "tcp", fmt.Sprintf("%s:%d", localenv.RedisIP, localenv.RedisPort))
	cancel()
	say("your machine cannot reach any of it: %v", err)

	if d.project, err = os.MkdirTemp("", "remocal-demo-project"); err != nil {
		return err
	}
	d.onCleanup(func() { os.RemoveAll(d.project) })
	os.MkdirAll(filepath.Join(d.project, ".remocal"), 0o755)
	if err := os.WriteFile(filepath.Join(d.project, ".remocal", "config.json"), []byte(projectConfig), 0o644); err != nil {
		return err
	}

	section(1, "The pod, as the other services see it")
	body, by, err := d.peerGet(ctx, "/")
	if err != nil {
		return err
	}
	say("peer -> GET http://%s:%d/  =>  %q (served by %s)", localenv.AppIP, localenv.AppPort, body, by)

	section(2, "Your local copy, started with remocal exec (incoming traffic mirrored)")
	say("project config .remocal/config.json:")
	for _, line := range strings.Split(strings.TrimSpace(projectConfig), "\n") {
		say("  %s", line)
	}
	local, err := d.start(ctx)
	if err != nil {
		return err
	}
	line, err := local.waitFor(ctx, "serving on")
	if err != nil {
		return err
	}
	say("[your copy] %s", line)
	say("            ^ hostname and Redis address are the pod's")

	section(3, "Ask your copy, on your machine (127.0.0.1:8080)")
	for _, req := range []struct{ method, path, what string }{
		{"GET", "/", "env var GREETING (overridden) and the pod's hostname"},
		{"GET", "/config", "the pod's /etc/inventory/config.json (your machine has none)"},
		{"POST", "/items?name=laptop-widget", "Redis, by its cluster DNS name, through the pod's network"},
		{"GET", "/items", "the pod's Redis again"},
	} {
		body, err := localRequest(ctx, req.method, req.path)
		if err != nil {
			return err
		}
		say("%-4s %-25s => %s", req.method, req.path, oneLine(body))
		say("     %-25s    (%s)", "", req.what)
	}

	section(4, "Mirrored traffic: the pod answers, your copy sees the same request")
	body, by, err = d.peerGet(ctx, "/healthz")
	if err != nil {
		return err
	}
	say("peer -> GET /healthz  =>  %q (served by %s, the pod)", body, by)
	if line, err = local.waitFor(ctx, "GET /healthz"); err != nil {
		return err
	}
	say("[your copy] %s   <- the mirrored copy", line)
	if err := local.stop(); err != nil {
		return err
	}

	section(5, "Stolen traffic (remocal exec --steal): your copy answers instead of the pod")
	local, err = d.start(ctx, "--steal")
	if err != nil {
		return err
	}
	if _, err := local.waitFor(ctx, "serving on"); err != nil {
		return err
	}
	body, by, err = d.peerGet(ctx, "/")
	if err != nil {
		return err
	}
	say("peer -> GET /  =>  %q (served by %s)", body, by)
	say("        ^ the greeting is your copy's: it answered for the pod")
	if err := local.stop(); err != nil {
		return err
	}
	body, _, err = d.peerGet(ctx, "/")
	if err != nil {
		return err
	}
	say("after your copy exits: peer -> GET /  =>  %q", body)
	return nil
}

// localCopy is the developer's copy of the service under remocal exec.
type localCopy struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan error
}

func (d *demo) start(ctx context.Context, flags ...string) (*localCopy, error) {
	args := append([]string{"exec", "--target", fmt.Sprintf("pid/%d", d.env.App.PID)}, flags...)
	say("$ remocal %s -- ./inventory", strings.Join(args, " "))
	args = append(args, "--", d.inventory)
	cmd := exec.Command(d.remocal, args...)
	cmd.Dir = d.project
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lc := &localCopy{cmd: cmd, lines: make(chan string, 64), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lc.lines <- sc.Text()
		}
		close(lc.lines)
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		lc.done <- err
	}()
	d.onCleanup(func() { lc.stop() })
	return lc, nil
}

// waitFor returns the first output line containing want, echoing remocal's
// own messages on the way.
func (lc *localCopy) waitFor(ctx context.Context, want string) (string, error) {
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-lc.lines:
			if !ok {
				return "", fmt.Errorf("your copy exited before %q", want)
			}
			if strings.HasPrefix(line, "remocal: ") {
				say("%s", line)
			}
			if strings.Contains(line, want) {
				return line, nil
			}
		case <-timeout:
			return "", fmt.Errorf("no %q from your copy within 20s", want)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// stop ends the copy with SIGINT, as Ctrl-C would, and waits.
func (lc *localCopy) stop() error {
	if lc.cmd.ProcessState != nil {
		return nil
	}
	syscall.Kill(-lc.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-lc.done:
		lc.done <- nil
	case <-time.After(10 * time.Second):
		syscall.Kill(-lc.cmd.Process.Pid, syscall.SIGKILL)
		return errors.New("your copy did not stop on Ctrl-C")
	}
	for range lc.lines {
	}
	return nil
}

func (d *demo) peerGet(ctx context.Context, path string) (string, string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s:%d%s", localenv.AppIP, localenv.AppPort, path), nil)
	if err != nil {
		return "", "", err
	}
	resp, err := d.env.HTTP(d.env.Peer).Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), resp.Header.Get("X-Served-By"), err
}

func localRequest(ctx context.Context, method, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://127.0.0.1:8080"+path, nil)
	if err != nil {
		return "", err
	}
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
