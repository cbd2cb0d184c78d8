package splittest

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remocal/remocal/operator/internal/queuesplit"
	qs "github.com/remocal/remocal/protocol/queuesplit"
)

// Bench measures, in one run, routing against direct consumption of the
// same broker: throughput draining a backlog of n messages (direct: the
// deployed consumer reads the original; routed: the router evaluates
// alice's steal of tenant=z on every message and delivers them all to the
// deployed consumer's queue, so one consumer does the same work in both),
// and the latency of one message at a time from publish to consumer over
// pings messages (routed: alice steals tenant=a, a third of them).
func Bench(b *testing.B, h Harness, n, pings int) {
	for b.Loop() {
		direct, _ := drain(b, h, n, false)
		routed, router := drain(b, h, n, true)
		pd := pingPong(b, h, pings, false)
		pr := pingPong(b, h, pings, true)
		b.ReportMetric(direct, "direct-msg/s")
		b.ReportMetric(routed, "routed-msg/s")
		b.ReportMetric(routed/direct, "routed/direct")
		b.ReportMetric(router, "router-msg/s")
		b.ReportMetric(us(pd), "direct-p50-µs")
		b.ReportMetric(us(pr), "routed-p50-µs")
		b.ReportMetric(us(pr-pd), "added-p50-µs")
	}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// consumers runs the consumers of one measurement: the deployed consumer
// on the original (direct) or on its own queue with alice on hers
// (routed), calling got for every message; stop ends the split.
func consumers(b *testing.B, h Harness, routed bool, aliceTenant string, delivered func(uint64), got func(Received)) (stop func()) {
	if !routed {
		c := startConsumer(b, h, h.Broker(b).Original(), "deployed", got)
		return func() { c.stop(b) }
	}
	rt := startRouter(b, h, queuesplit.Options{Delivered: delivered})
	env, err := rt.r.DeployedEnv(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	deployed := startConsumer(b, h, env, "deployed", got)
	alice := startConsumer(b, h, addSession(b, rt.r, "alice", split(qs.ModeSteal, aliceTenant)), "alice", got)
	return func() {
		alice.stop(b)
		if _, err := rt.r.RemoveSession(b.Context(), "alice"); err != nil {
			b.Fatal(err)
		}
		deployed.stop(b)
		rt.kill(b)
		r, err := queuesplit.New(b.Context(), h.Broker(b), queuesplit.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Settle(b.Context(), 30*time.Second); err != nil {
			b.Fatal(err)
		}
		if _, err := r.Drain(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// drain publishes a backlog of n messages, then times its consumption,
// and the router's part of it when routed.
func drain(b *testing.B, h Harness, n int, routed bool) (consumed, router float64) {
	for i := 1; i <= n; i++ {
		if err := h.Publish(b.Context(), i, tenantOf(i), nil); err != nil {
			b.Fatal(err)
		}
	}
	var count atomic.Int64
	all := make(chan struct{})
	var routerDone atomic.Int64
	start := time.Now()
	stop := consumers(b, h, routed, "z", func(total uint64) {
		if total == uint64(n) {
			routerDone.Store(int64(time.Since(start)))
		}
	}, func(Received) {
		if count.Add(1) == int64(n) {
			close(all)
		}
	})
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d messages consumed in 5 minutes", count.Load(), n)
	}
	consumed = float64(n) / time.Since(start).Seconds()
	stop()
	if d := routerDone.Load(); d > 0 {
		router = float64(n) / time.Duration(d).Seconds()
	}
	return consumed, router
}

// pingPong publishes one message at a time and waits for a consumer to
// get it; it returns the median time.
func pingPong(b *testing.B, h Harness, pings int, routed bool) time.Duration {
	got := make(chan int, 1)
	stop := consumers(b, h, routed, "a", nil, func(r Received) { got <- r.N })
	defer stop()
	lat := make([]time.Duration, 0, pings)
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	for i := 1; i <= pings; i++ {
		start := time.Now()
		if err := h.Publish(ctx, i, tenantOf(i), nil); err != nil {
			b.Fatal(err)
		}
		select {
		case n := <-got:
			if n != i {
				b.Fatalf("got message %d, want %d", n, i)
			}
		case <-ctx.Done():
			b.Fatalf("message %d did not arrive", i)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return lat[len(lat)/2]
}
