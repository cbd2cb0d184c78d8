package broker_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/agenttls"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
)

// BenchmarkSessionCapacity measures what one operator process pays per
// session: the broker runs alone in a child process (as in
// remocal-operator), serving TLS connections from N real clients in this
// process, each with a header-filtered steal, to a real agent in this
// process. Reported: the child's RSS per session, and its CPU per session
// per second while the clients only heartbeat (every 5 s, remocal's
// kube.OperatorHeartbeat) and while each session receives one request
// every 10 s. Run with -benchtime 1x; see docs/performance.md.
func BenchmarkSessionCapacity(b *testing.B) {
	for _, n := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			env := envtest.New(b)
			la := newLocalAgents(b)
			la.add(env.App, time.Now().Add(-time.Hour))
			for range b.N {
				m := measureCapacity(b, env, la, n)
				b.ReportMetric(m.rssTotal/(1<<20), "MiB-rss")
				b.ReportMetric(m.rssPerSession, "B-rss/session")
				b.ReportMetric(m.idleCPU, "idle-cpu-ms/session/s")
				b.ReportMetric(m.trafficCPU, "traffic-cpu-ms/session/s")
				b.ReportMetric(m.goroutines, "goroutines/session")
				b.ReportMetric(m.heapPerSession, "B-heap/session")
				b.ReportMetric(m.stackPerSession, "B-stack/session")
			}
		})
	}
}

type capacity struct {
	rssTotal, rssPerSession, heapPerSession, stackPerSession float64
	idleCPU, trafficCPU, goroutines                          float64
}

// measureWindow is how long CPU is sampled in each phase: two heartbeat
// periods.
const measureWindow = 10 * time.Second

func measureCapacity(b *testing.B, env *localenv.Env, la *localAgents, n int) capacity {
	child := startBrokerProcess(b, la, env.App.Name)
	defer child.stop()
	base := child.stats()

	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Served-By", "local-"+r.Header.Get("X-User"))
	}))
	defer local.Close()
	clients := connectClients(b, child.addr, child.tls, n, strings.TrimPrefix(local.URL, "http://"))
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()

	// REMOCAL_CAPACITY_PROFILE=DIR: the child's CPU profile of the idle
	// window and its heap profile after it, for each N.
	profile := os.Getenv("REMOCAL_CAPACITY_PROFILE")
	if profile != "" {
		fmt.Fprintf(child.in, "profile %s/idle-%d.cpu\n", profile, n)
	}
	cpu0 := child.cpu()
	time.Sleep(measureWindow) // the measurement window itself
	idle := child.cpu() - cpu0
	if profile != "" {
		fmt.Fprintf(child.in, "heap %s/heap-%d.pprof\n", profile, n)
	}
	loaded := child.stats()

	cpu0 = child.cpu()
	sendTraffic(b, env, n, measureWindow)
	traffic := child.cpu() - cpu0

	perSec := float64(measureWindow) / float64(time.Second)
	m := capacity{
		rssTotal:        float64(loaded.rss),
		rssPerSession:   float64(loaded.rss-base.rss) / float64(n),
		heapPerSession:  float64(loaded.heap-base.heap) / float64(n),
		stackPerSession: float64(loaded.stack-base.stack) / float64(n),
		goroutines:      float64(loaded.goroutines-base.goroutines) / float64(n),
		idleCPU:         float64(idle.Milliseconds()) / perSec / float64(n),
		trafficCPU:      float64(traffic.Milliseconds()) / perSec / float64(n),
	}
	b.Logf("%d sessions: RSS %.1f MiB (base %.1f MiB), %.0f B/session, heap %.0f B/session, stacks %.0f B/session, %.1f goroutines/session; CPU idle %v, traffic %v per %v",
		n, m.rssTotal/(1<<20), float64(base.rss)/(1<<20), m.rssPerSession, m.heapPerSession, m.stackPerSession, m.goroutines, idle, traffic, measureWindow)
	return m
}

// connectClients connects n clients to the broker process, each stealing
// port 8080 for requests with its own X-User header.
func connectClients(b *testing.B, addr string, pinned *tls.Config, n int, forwardTo string) []*agentclient.Client {
	clients := make([]*agentclient.Client, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := connectClient(addr, pinned, i, forwardTo)
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				clients[i] = c
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
		b.Fatal(err)
	}
	return clients
}

func connectClient(addr string, pinned *tls.Config, i int, forwardTo string) (*agentclient.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{Config: pinned}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c, err := agentclient.New(ctx, conn, agentclient.Options{
		Name: fmt.Sprintf("s%04d@laptop", i), Version: "bench", Host: "laptop", Tool: "capacity benchmark",
		TransportAuthenticated: true, Heartbeat: 5 * time.Second,
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	spec := wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": fmt.Sprintf("s%04d", i)}}}
	if _, err := c.Subscribe(ctx, spec, agentclient.ForwardTo(forwardTo)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// sendTraffic sends one request to each of the n sessions, spread evenly
// over d, from the peer pod, and fails if any is not served by its
// session.
func sendTraffic(b *testing.B, env *localenv.Env, n int, d time.Duration) {
	peer := env.HTTP(env.Peer)
	tick := time.NewTicker(d / time.Duration(n))
	defer tick.Stop()
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for i := range n {
		<-tick.C
		wg.Go(func() {
			user := fmt.Sprintf("s%04d", i)
			req, _ := http.NewRequest("POST", "http://"+localenv.AppIP.String()+":8080/work", strings.NewReader(strings.Repeat("x", 1024)))
			req.Header.Set("X-User", user)
			resp, err := peer.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if by := resp.Header.Get("X-Served-By"); by != "local-"+user {
					err = fmt.Errorf("served by %q, status %d", by, resp.StatusCode)
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Errorf("request to session %s: %w", user, err))
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d requests failed; first: %v", n, firstErr.Load())
	}
}

// brokerChild is the broker process.
type brokerChild struct {
	b    *testing.B
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	addr string
	tls  *tls.Config
}

type childStats struct {
	rss, heap, stack int64
	goroutines       int64
}

func startBrokerProcess(b *testing.B, la *localAgents, pod string) *brokerChild {
	la.mu.Lock()
	a := la.agents[pod]
	la.mu.Unlock()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	// The child inherits this process's network namespace (the test
	// binary's isolated one), so loopback is shared.
	cmd.Env = append(os.Environ(), brokerProcessEnv+"=1", "AGENT_ADDR="+a.addr, "AGENT_CERT="+string(a.cert), "AGENT_POD="+pod)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &brokerChild{b: b, cmd: cmd, in: in, out: bufio.NewReader(out)}
	var certPEM string
	if _, err := fmt.Fscanf(c.out, "listening %s %q\n", &c.addr, &certPEM); err != nil {
		c.stop()
		b.Fatalf("the broker process did not start: %v", err)
	}
	if c.tls, err = agenttls.PinnedConfig([]byte(certPEM)); err != nil {
		c.stop()
		b.Fatal(err)
	}
	return c
}

func (c *brokerChild) stop() {
	c.in.Close()
	if err := c.cmd.Wait(); err != nil {
		c.b.Errorf("the broker process: %v", err)
	}
}

// stats asks the child for its Go figures and reads its RSS.
func (c *brokerChild) stats() childStats {
	var s childStats
	fmt.Fprintln(c.in, "stats")
	if _, err := fmt.Fscanf(c.out, "goroutines %d heap %d stack %d\n", &s.goroutines, &s.heap, &s.stack); err != nil {
		c.b.Fatalf("stats from the broker process: %v", err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		c.b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			s.rss = kb << 10
		}
	}
	return s
}

// cpu is the child's user and system CPU time so far.
func (c *brokerChild) cpu() time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		c.b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
