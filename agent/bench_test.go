package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
)

// Benchmarks compare remocal with the direct path inside the same run, and
// report ratios, so that results from different machines stay comparable.
// Results: docs/performance.md.

// peerServer runs fn for every connection accepted on the peer pod's port.
func peerServer(b *testing.B, env *localenv.Env, port int, fn func(net.Conn)) string {
	b.Helper()
	ns, err := env.Peer.NS()
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()
	addr := fmt.Sprintf("%s:%d", localenv.PeerIP, port)
	l, err := ns.Listen(context.Background(), "tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fn(c)
			}()
		}
	}()
	b.Cleanup(func() {
		l.Close()
		<-done
	})
	return addr
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func benchSetup(b *testing.B) (*localenv.Env, *agentclient.Client, dialFunc) {
	env := envtest.New(b)
	ta := startAgent(b, env.App, agentOptions{})
	c, err := agentclient.Dial(context.Background(), ta.addr, agentclient.Options{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	direct := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return env.Dial(ctx, env.App, network, addr)
	}
	return env, c, direct
}

// BenchmarkOutgoingThroughput downloads through the agent and directly from
// the target's namespace, alternating, and reports both rates and their
// ratio (goal: agent/direct >= 0.5).
func BenchmarkOutgoingThroughput(b *testing.B) {
	env, c, direct := benchSetup(b)
	const size = 64 << 20
	chunk := make([]byte, 256<<10)
	addr := peerServer(b, env, 9001, func(conn net.Conn) {
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	})
	download := func(dial dialFunc) time.Duration {
		start := time.Now()
		conn, err := dial(context.Background(), "tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		// Read as an application would, with a sizeable buffer (io.Discard's
		// own ReadFrom reads 8 KiB at a time).
		n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, conn, make([]byte, 256<<10))
		if err != nil || n != size {
			b.Fatalf("downloaded %d bytes (%v), want %d", n, err, size)
		}
		return time.Since(start)
	}
	var tDirect, tAgent time.Duration
	b.ResetTimer()
	for range b.N {
		tDirect += download(direct)
		tAgent += download(c.DialContext)
	}
	mb := float64(size) * float64(b.N) / 1e6
	b.ReportMetric(mb/tDirect.Seconds(), "direct-MB/s")
	b.ReportMetric(mb/tAgent.Seconds(), "agent-MB/s")
	b.ReportMetric(tDirect.Seconds()/tAgent.Seconds(), "ratio")
}

// BenchmarkOutgoingLatency measures request/response round trips of 64
// bytes on an established connection, and reports p50 for both paths and
// what the agent adds (goal: < 100 µs).
func BenchmarkOutgoingLatency(b *testing.B) {
	env, c, direct := benchSetup(b)
	addr := peerServer(b, env, 9002, func(conn net.Conn) { io.Copy(conn, conn) })
	rounds := func(dial dialFunc, n int) []time.Duration {
		conn, err := dial(context.Background(), "tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		msg, buf := make([]byte, 64), make([]byte, 64)
		out := make([]time.Duration, 0, n)
		for range n {
			start := time.Now()
			if _, err := conn.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(conn, buf); err != nil {
				b.Fatal(err)
			}
			out = append(out, time.Since(start))
		}
		return out
	}
	b.ResetTimer()
	d := rounds(direct, b.N)
	a := rounds(c.DialContext, b.N)
	reportLatency(b, d, a)
}

func reportLatency(b *testing.B, direct, via []time.Duration) {
	p := func(ds []time.Duration, q float64) float64 {
		slices.Sort(ds)
		return float64(ds[int(float64(len(ds)-1)*q)].Nanoseconds()) / 1e3
	}
	b.ReportMetric(p(direct, 0.5), "direct-p50-µs")
	b.ReportMetric(p(via, 0.5), "remocal-p50-µs")
	b.ReportMetric(p(via, 0.99), "remocal-p99-µs")
	b.ReportMetric(p(via, 0.5)-p(direct, 0.5), "added-p50-µs")
	b.ReportMetric(p(via, 0.5)/p(direct, 0.5), "ratio-p50")
}

// BenchmarkStolenRequestLatency compares HTTP GETs on one keep-alive
// connection from the peer pod to a server in the target's namespace, first
// answered by that server directly, then stolen and answered by a local
// server running the same handler in the same process: the difference is
// what remocal adds (budget: < 300 µs p50).
func BenchmarkStolenRequestLatency(b *testing.B) {
	for _, filtered := range []bool{false, true} {
		name := "unfiltered"
		if filtered {
			name = "header-filter"
		}
		b.Run(name, func(b *testing.B) {
			env, c, _ := benchSetup(b)
			const port = 9080
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
			appNS, err := env.App.NS()
			if err != nil {
				b.Fatal(err)
			}
			l, err := appNS.Listen(context.Background(), "tcp", fmt.Sprintf(":%d", port))
			appNS.Close()
			if err != nil {
				b.Fatal(err)
			}
			inTarget := &http.Server{Handler: handler}
			go inTarget.Serve(l)
			b.Cleanup(func() { inTarget.Close() })
			local := httptest.NewServer(handler)
			b.Cleanup(local.Close)

			get := func(n int) []time.Duration {
				conn, err := env.Dial(context.Background(), env.Peer, "tcp", fmt.Sprintf("%s:%d", localenv.AppIP, port))
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				br := bufio.NewReader(conn)
				req, _ := http.NewRequest("GET", "http://app/", nil)
				req.Header.Set("X-Remocal-User", "bench")
				out := make([]time.Duration, 0, n)
				for range n {
					start := time.Now()
					if err := req.Write(conn); err != nil {
						b.Fatal(err)
					}
					resp, err := http.ReadResponse(br, req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					out = append(out, time.Since(start))
				}
				return out
			}
			b.ResetTimer()
			d := get(b.N)
			spec := wire.Subscribe{Port: port, Mode: wire.ModeSteal}
			if filtered {
				spec.Filter = &wire.HTTPFilter{Headers: map[string]string{"X-Remocal-User": "bench"}}
			}
			fwd := agentclient.ForwardTo(strings.TrimPrefix(local.URL, "http://"))
			sub, err := c.Subscribe(context.Background(), spec, fwd)
			if err != nil {
				b.Fatal(err)
			}
			s := get(b.N)
			sub.Close(context.Background())
			reportLatency(b, d, s)
		})
	}
}
