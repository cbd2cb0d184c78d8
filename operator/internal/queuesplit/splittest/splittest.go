// Package splittest is the scenario every queuesplit broker's tests run
// against a real server: a producer of numbered messages with a tenant
// header, the deployed consumer, alice (tenant=a) and bob (tenant=b), the
// router killed and started again, sessions added and removed while the
// producer runs, and the drain at the end; each message is checked by its
// number.
package splittest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remocal/remocal/operator/internal/queuesplit"
	qs "github.com/remocal/remocal/protocol/queuesplit"
)

// Harness is one broker under test.
type Harness interface {
	// Broker is a new handle on the original queue, as a restarted
	// operator would open it.
	Broker(t testing.TB) queuesplit.Broker
	// Publish publishes message n with header tenant=tenant and body
	// {"n":n,"tenant":tenant}; extra headers are added as they are.
	Publish(ctx context.Context, n int, tenant string, extra map[string]string) error
	// Consume reads env's queue as the workload would (its group or
	// durable, under the consumer name name) and calls got for each
	// message before acknowledging it, until ctx ends. A message whose
	// processing started is finished (got, then the acknowledgement)
	// even if ctx ends meanwhile, as a consumer that stops cleanly does.
	Consume(ctx context.Context, env queuesplit.Env, name string, got func(Received)) error
	// State describes the broker's queues and groups, to compare before
	// and after a split.
	State(ctx context.Context) (string, error)
	// Addr is the broker's address, for a router in another process
	// (RouterProcess).
	Addr() string
}

// Received is one message as a consumer saw it.
type Received struct {
	N       int
	Tenant  string
	Headers map[string][]string
}

// Until is poll.Until, passed in because non-test packages do not import
// test/.
type Until func(ctx context.Context, timeout time.Duration, try func() error) error

// ledger records which consumer got which message.
type ledger struct {
	mu  sync.Mutex
	got map[int][]string // n -> consumers, in order
	by  map[string][]Received
}

func newLedger() *ledger {
	return &ledger{got: map[int][]string{}, by: map[string][]Received{}}
}

func (l *ledger) record(who string) func(Received) {
	return func(r Received) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.got[r.N] = append(l.got[r.N], who)
		l.by[who] = append(l.by[who], r)
	}
}

func (l *ledger) count(who string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.by[who])
}

func (l *ledger) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got)
}

// consumer is a running Consume, stopped and restarted on another env
// the way a rollout moves the workload.
type consumer struct {
	cancel context.CancelFunc
	done   chan error
}

func startConsumer(t testing.TB, h Harness, env queuesplit.Env, name string, got func(Received)) *consumer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- h.Consume(ctx, env, name, got) }()
	t.Cleanup(func() { c.stop(t) })
	return c
}

func (c *consumer) stop(t testing.TB) {
	if c.cancel == nil {
		return
	}
	c.cancel()
	c.cancel = nil
	if err := <-c.done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("consumer: %v", err)
	}
}

// router is a running Router.Run.
type router struct {
	r      *queuesplit.Router
	cancel context.CancelFunc
	done   chan error
}

func startRouter(t testing.TB, h Harness, opts queuesplit.Options) *router {
	t.Helper()
	r, err := queuesplit.New(t.Context(), h.Broker(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return runRouter(t, r)
}

func runRouter(t testing.TB, r *queuesplit.Router) *router {
	ctx, cancel := context.WithCancel(context.Background())
	rt := &router{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { rt.done <- r.Run(ctx) }()
	t.Cleanup(func() { rt.kill(t) })
	return rt
}

// kill cancels Run wherever it is, as a crash would interrupt it.
func (rt *router) kill(t testing.TB) {
	if rt.cancel == nil {
		return
	}
	rt.cancel()
	rt.cancel = nil
	if err := <-rt.done; err != nil {
		t.Errorf("router: %v", err)
	}
}

// producer publishes numbered messages at a steady pace until n, never
// more than the test allows, so that the test's steps (a session added,
// a router killed) happen at known points while it keeps publishing.
type producer struct {
	published atomic.Int64
	limit     atomic.Int64
	wake      chan struct{}
	done      chan error
}

// ahead is how far the producer may run past the point a test waits for.
const ahead = 200

func startProducer(ctx context.Context, h Harness, n int, every time.Duration) *producer {
	p := &producer{done: make(chan error, 1), wake: make(chan struct{}, 1)}
	p.limit.Store(ahead)
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 1; i <= n; i++ {
			for int64(i) > p.limit.Load() {
				select {
				case <-ctx.Done():
					p.done <- ctx.Err()
					return
				case <-p.wake:
				}
			}
			if err := h.Publish(ctx, i, tenantOf(i), nil); err != nil {
				p.done <- fmt.Errorf("publishing %d: %w", i, err)
				return
			}
			p.published.Store(int64(i))
			if i%10 == 0 {
				select {
				case <-ctx.Done():
					p.done <- ctx.Err()
					return
				case <-tick.C:
				}
			}
		}
		p.done <- nil
	}()
	return p
}

// allow lets the producer publish up to n.
func (p *producer) allow(n int) {
	if int64(n) > p.limit.Load() {
		p.limit.Store(int64(n))
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

func tenantOf(i int) string { return string(rune('a' + i%3)) }

// awaitPublished lets the producer run to n and a little further, and
// waits until it has published n.
func (p *producer) awaitPublished(t testing.TB, until Until, n int) {
	t.Helper()
	p.allow(n + ahead)
	if err := until(t.Context(), 60*time.Second, func() error {
		if got := p.published.Load(); got < int64(n) {
			return fmt.Errorf("%d of %d published", got, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func awaitTotal(t testing.TB, until Until, l *ledger, n int) {
	t.Helper()
	if err := until(t.Context(), 60*time.Second, func() error {
		if d := l.distinct(); d < n {
			return fmt.Errorf("%d of %d messages received", d, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func split(mode qs.Mode, tenant string) qs.Split {
	return qs.Split{Consumer: "orders-worker", Mode: mode, Filter: &qs.Filter{Headers: map[string]string{"tenant": tenant}}}
}

func addSession(t testing.TB, r *queuesplit.Router, id string, s qs.Split) queuesplit.Env {
	t.Helper()
	env, err := r.AddSession(t.Context(), id, s)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// settleAndDrain ends the split as the operator will: the router stops,
// settles what it held, the workload goes back to the original queue,
// and the temporary queues drain into it.
func settleAndDrain(t testing.TB, h Harness, rt *router, deployed **consumer, record func(Received), settle time.Duration) int {
	t.Helper()
	rt.kill(t)
	// A router started after the crash: the operator after a restart.
	r, err := queuesplit.New(t.Context(), h.Broker(t), queuesplit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Settle(t.Context(), settle); err != nil {
		t.Fatal(err)
	}
	(*deployed).stop(t)
	*deployed = startConsumer(t, h, h.Broker(t).Original(), "deployed", record)
	moved, err := r.Drain(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return moved
}

// Steal runs the steal scenario (docs/queues.md): every message exactly
// once at the right consumer, sessions coming and going, 21 router
// crashes (7 of them a SIGKILLed router process), drains of a session's queue and of the deployed consumer's.
// settle bounds Router.Settle (longer than the consumer's AckWait).
func Steal(t *testing.T, h Harness, until Until, settle time.Duration, ordered bool) {
	const n = 4000
	before, err := h.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	l := newLedger()
	deployed := startConsumer(t, h, h.Broker(t).Original(), "deployed", l.record("deployed"))
	p := startProducer(t.Context(), h, n, 2*time.Millisecond)

	p.awaitPublished(t, until, 200)
	rt := startRouter(t, h, queuesplit.Options{Batch: 50, Wait: 100 * time.Millisecond})
	env, err := rt.r.DeployedEnv(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	deployed.stop(t)
	deployed = startConsumer(t, h, env, "deployed", l.record("deployed"))

	p.awaitPublished(t, until, 600)
	alice := startConsumer(t, h, addSession(t, rt.r, "alice", split(qs.ModeSteal, "a")), "alice", l.record("alice"))
	p.awaitPublished(t, until, 1000)
	bob := startConsumer(t, h, addSession(t, rt.r, "bob", split(qs.ModeSteal, "b")), "bob", l.record("bob"))
	if _, err := rt.r.AddSession(t.Context(), "carol", split(qs.ModeSteal, "a")); !errors.As(err, new(*queuesplit.ConflictError)) {
		t.Errorf("carol stealing tenant=a as alice does: got %v, want a ConflictError", err)
	}

	// Crashes: the router's context cancelled wherever it is, or (every
	// third time) its process SIGKILLed; a new router (a restarted
	// operator) resumes from the broker's state with the sessions the
	// operator knows.
	stealers := map[string]qs.Split{"alice": split(qs.ModeSteal, "a"), "bob": split(qs.ModeSteal, "b")}
	var proc *routerProc
	for i, at := 0, 1400; at <= 2200; i, at = i+1, at+40 {
		p.awaitPublished(t, until, at)
		rt.kill(t)
		if proc != nil {
			proc.kill(t)
			proc = nil
		}
		if i%3 == 1 && at < 2200 {
			proc = startRouterProcess(t, h, stealers)
			continue
		}
		r, err := queuesplit.New(t.Context(), h.Broker(t), queuesplit.Options{Batch: 50, Wait: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		addSession(t, r, "alice", stealers["alice"])
		addSession(t, r, "bob", stealers["bob"])
		rt = runRouter(t, r)
	}

	// Bob's session ends while messages keep coming: what his queue
	// holds goes to the deployed consumer; then he starts again.
	p.awaitPublished(t, until, 2600)
	bob.stop(t)
	if _, err := rt.r.RemoveSession(t.Context(), "bob"); err != nil {
		t.Fatal(err)
	}
	p.awaitPublished(t, until, 3000)
	bob = startConsumer(t, h, addSession(t, rt.r, "bob", split(qs.ModeSteal, "b")), "bob", l.record("bob"))

	// Alice's program stops early: her queue fills, and ending her
	// session must move it to the deployed consumer.
	p.awaitPublished(t, until, 3200)
	alice.stop(t)
	aliceStopped := rt.r.SessionStats()["alice"]
	// The deployed consumer's rollout starts: its queue fills until the
	// drain at the end moves it into the original.
	p.awaitPublished(t, until, 3600)
	deployed.stop(t)
	deployedStopped := rt.r.SessionStats()[""]
	p.allow(n)
	if err := <-p.done; err != nil {
		t.Fatal(err)
	}
	// The queues of stopped consumers fill, so the drains have
	// something to move.
	if err := until(t.Context(), 60*time.Second, func() error {
		st := rt.r.SessionStats()
		if st["alice"] < aliceStopped+10 || st[""] < deployedStopped+10 {
			return fmt.Errorf("routed to alice %d and to the deployed consumer %d since they stopped", st["alice"]-aliceStopped, st[""]-deployedStopped)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	movedAlice, err := rt.r.RemoveSession(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	bob.stop(t)
	movedBob, err := rt.r.RemoveSession(t.Context(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	moved := settleAndDrain(t, h, rt, &deployed, l.record("deployed"), settle)
	awaitTotal(t, until, l, n)
	t.Logf("received: deployed %d, alice %d, bob %d; moved back: alice's queue %d, bob's %d, deployed's %d",
		l.count("deployed"), l.count("alice"), l.count("bob"), movedAlice, movedBob, moved)
	if movedAlice == 0 || moved == 0 {
		t.Errorf("the drains moved %d (alice's queue) and %d (deployed consumer's queue) messages; the scenario stopped those consumers to leave some", movedAlice, moved)
	}
	checkExactlyOnce(t, l, n)
	for who, tenant := range map[string]string{"alice": "a", "bob": "b"} {
		if l.count(who) == 0 {
			t.Errorf("%s received nothing", who)
		}
		for _, r := range l.by[who] {
			if r.Tenant != tenant {
				t.Errorf("%s received message %d of tenant %s", who, r.N, r.Tenant)
			}
		}
		if ordered {
			checkOrdered(t, who, l.by[who])
		}
	}
	checkState(t, h, before)
}

// Mirror runs the mirror scenario: alice gets a copy of each tenant=a
// message, the deployed consumer still gets every message once, across
// a router crash. ordered checks that alice's copies keep their order
// (where the broker redelivers in order after a crash).
func Mirror(t *testing.T, h Harness, until Until, settle time.Duration, ordered bool) {
	const n = 2000
	before, err := h.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	l := newLedger()
	alice := newLedger()
	rt := startRouter(t, h, queuesplit.Options{Batch: 50, Wait: 100 * time.Millisecond})
	env, err := rt.r.DeployedEnv(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	deployed := startConsumer(t, h, env, "deployed", l.record("deployed"))
	aliceEnv := addSession(t, rt.r, "alice", split(qs.ModeMirror, "a"))
	from := 0 // every message is published after alice's split
	consumerA := startConsumer(t, h, aliceEnv, "alice", alice.record("alice"))
	// bob mirrors tenant=a too: mirrors never conflict.
	if _, err := rt.r.AddSession(t.Context(), "bob", split(qs.ModeMirror, "a")); err != nil {
		t.Errorf("a second mirror of tenant=a: %v", err)
	}
	if _, err := rt.r.RemoveSession(t.Context(), "bob"); err != nil {
		t.Fatal(err)
	}
	// carol mirrors tenant=b and consumes nothing: her copies are dropped
	// when her session ends (moved to the deployed consumer, they would
	// reach it twice).
	addSession(t, rt.r, "carol", split(qs.ModeMirror, "b"))
	p := startProducer(t.Context(), h, n, 2*time.Millisecond)
	p.awaitPublished(t, until, 1000)
	rt.kill(t)
	p.allow(n)
	r, err := queuesplit.New(t.Context(), h.Broker(t), queuesplit.Options{Batch: 50, Wait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addSession(t, r, "alice", split(qs.ModeMirror, "a"))
	addSession(t, r, "carol", split(qs.ModeMirror, "b"))
	rt = runRouter(t, r)
	if err := <-p.done; err != nil {
		t.Fatal(err)
	}
	want := 0
	for i := from + 1; i <= n; i++ {
		if tenantOf(i) == "a" {
			want++
		}
	}
	awaitTotal(t, until, alice, want)
	consumerA.stop(t)
	for _, id := range []string{"alice", "carol"} {
		if _, err := rt.r.RemoveSession(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	settleAndDrain(t, h, rt, &deployed, l.record("deployed"), settle)
	awaitTotal(t, until, l, n)
	checkExactlyOnce(t, l, n)
	checkExactlyOnce(t, alice, 0)
	for _, r := range alice.by["alice"] {
		if r.Tenant != "a" {
			t.Errorf("alice received a copy of message %d of tenant %s", r.N, r.Tenant)
		}
	}
	if got := alice.count("alice"); got != want {
		t.Errorf("alice received %d copies, want %d (every tenant=a message)", got, want)
	}
	if ordered {
		checkOrdered(t, "alice", alice.by["alice"])
	}
	checkState(t, h, before)
}

// checkExactlyOnce: each message 1..n reached exactly one consumer once
// (n 0: no message twice).
func checkExactlyOnce(t *testing.T, l *ledger, n int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var dup []string
	for i, who := range l.got {
		if len(who) > 1 {
			dup = append(dup, fmt.Sprintf("%d→%v", i, who))
		}
		if n > 0 && (i < 1 || i > n) {
			t.Errorf("message %d was never published", i)
		}
	}
	sort.Strings(dup)
	if len(dup) > 0 {
		t.Errorf("%d messages received more than once: %v", len(dup), dup[:min(len(dup), 20)])
	}
	if n > 0 {
		var lost []int
		for i := 1; i <= n; i++ {
			if len(l.got[i]) == 0 {
				lost = append(lost, i)
			}
		}
		if len(lost) > 0 {
			t.Errorf("%d messages lost: %v", len(lost), lost[:min(len(lost), 20)])
		}
	}
}

// checkOrdered: a consumer's messages arrive in publishing order.
func checkOrdered(t *testing.T, who string, rs []Received) {
	t.Helper()
	ns := make([]int, len(rs))
	for i, r := range rs {
		ns[i] = r.N
	}
	if !slices.IsSorted(ns) {
		for i := 1; i < len(ns); i++ {
			if ns[i] < ns[i-1] {
				t.Errorf("%s received message %d after %d", who, ns[i], ns[i-1])
				break
			}
		}
	}
}

func checkState(t *testing.T, h Harness, before string) {
	t.Helper()
	after, err := h.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("the broker's queues differ after the split:\nbefore: %s\nafter:  %s", before, after)
	}
}
