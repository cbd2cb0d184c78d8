package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/poll"
)

// steal is an unfiltered steal of the app's port.
var steal = wire.Subscribe{Port: 8080, Mode: wire.ModeSteal}

func (f *fixture) phase(name string) string {
	s, ok := f.b.Get(ns, name)
	if !ok {
		return "gone"
	}
	return s.Status.Phase
}

func (f *fixture) waitPhase(t *testing.T, name, want string) {
	t.Helper()
	if err := poll.Until(testCtx(t), 20*time.Second, func() error {
		if got := f.phase(name); got != want {
			return fmt.Errorf("session %s is %s, want %s", name, got, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A client that vanishes: its traffic returns to the app at once, its lock
// is kept from others until the TTL, then released and the session gone.
func TestVanishedClientKeepsItsLocksUntilTheTTL(t *testing.T) {
	const ttl = 1500 * time.Millisecond
	f := newFixture(t, fixtureOptions{sessionTTL: ttl})
	ctx := testCtx(t)
	alice := f.mustConnect("alice", clientOptions{})
	name := alice.Welcome().Operator.Session
	if _, err := alice.Subscribe(ctx, steal, newLocalServer(t, "alice").forwarder()); err != nil {
		t.Fatal(err)
	}
	if by := f.servedBy(localenv.AppIP, "/", nil); by != "local-alice" {
		t.Fatalf("served by %q before the client vanished", by)
	}
	alice.conn.Close() // no goodbye: the laptop went away
	f.waitPhase(t, name, operator.PhaseDisconnected)
	s, _ := f.b.Get(ns, name)
	if s.Status.ExpiresAt == nil || len(s.Status.Ports) != 1 || !s.Status.Ports[0].Lock {
		t.Fatalf("disconnected session: expires %v ports %+v", s.Status.ExpiresAt, s.Status.Ports)
	}
	if by := f.servedBy(localenv.AppIP, "/", nil); by != f.env.App.Hostname {
		t.Fatalf("served by %q while alice is away, want the app", by)
	}
	bob := f.mustConnect("bob", clientOptions{})
	_, err := bob.Subscribe(ctx, steal, newLocalServer(t, "bob").forwarder())
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeConflict || we.Holder.User != "alice" {
		t.Fatalf("bob's steal during alice's lease: %v, want a conflict naming alice", err)
	}
	f.waitPhase(t, name, "gone")
	if _, err := bob.Subscribe(ctx, steal, newLocalServer(t, "bob").forwarder()); err != nil {
		t.Fatalf("bob's steal after alice's lease expired: %v", err)
	}
	if by := f.servedBy(localenv.AppIP, "/", nil); by != "local-bob" {
		t.Fatalf("served by %q, want bob", by)
	}
	// alice's laptop comes back after the lease: only silent, not killed,
	// so it gets its session's name again (without the port bob took).
	back := f.mustConnect("alice", clientOptions{session: name})
	if got := back.Welcome().Operator.Session; got != name {
		t.Errorf("alice came back to session %q, want %q", got, name)
	}
}

// A client that comes back within the TTL resumes its session: the same
// name, its lock kept from others and taken back when it subscribes.
func TestResumeWithinTheTTLKeepsTheLocks(t *testing.T) {
	f := newFixture(t, fixtureOptions{sessionTTL: time.Minute})
	ctx := testCtx(t)
	alice := f.mustConnect("alice", clientOptions{})
	name := alice.Welcome().Operator.Session
	spec := wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "alice"}}}
	if _, err := alice.Subscribe(ctx, spec, newLocalServer(t, "alice").forwarder()); err != nil {
		t.Fatal(err)
	}
	first, _ := f.b.Get(ns, name)
	alice.conn.Close()
	f.waitPhase(t, name, operator.PhaseDisconnected)

	// Another user naming alice's session does not get it.
	mallory := f.mustConnect("mallory", clientOptions{session: name})
	if got := mallory.Welcome().Operator.Session; got == name {
		t.Fatal("another user resumed alice's session")
	}
	if _, err := mallory.Subscribe(ctx, spec, newLocalServer(t, "mallory").forwarder()); wire.CodeOf(err) != wire.CodeConflict {
		t.Fatalf("mallory took alice's reserved lock: %v", err)
	}

	again := f.mustConnect("alice", clientOptions{session: name})
	if got := again.Welcome().Operator.Session; got != name {
		t.Fatalf("resumed session %q, want %q", got, name)
	}
	f.waitPhase(t, name, operator.PhaseActive)
	if _, err := again.Subscribe(ctx, spec, newLocalServer(t, "alice-again").forwarder()); err != nil {
		t.Fatalf("alice subscribing again after resuming: %v", err)
	}
	if by := f.servedBy(localenv.AppIP, "/", hdr("X-User", "alice")); by != "local-alice-again" {
		t.Fatalf("alice's request served by %q", by)
	}
	s, _ := f.b.Get(ns, name)
	if len(s.Status.Ports) != 1 || s.Status.Ports[0].Since == nil || !s.Status.Ports[0].Since.Equal(first.Status.Ports[0].Since) {
		t.Errorf("ports after resuming: %+v, want the lock since %v", s.Status.Ports, first.Status.Ports[0].Since)
	}
	if !s.Status.StartTime.Equal(&first.Status.StartTime) {
		t.Errorf("start time changed on resume")
	}
}

// Every replica: a session receives what reaches each pod, and follows
// pods as they come and go; env and files come from the oldest.
func TestEveryPodDeliversToTheSession(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := testCtx(t)
	ip2 := netip.MustParseAddr("10.77.0.11")
	pod2, err := f.env.StartApp(ctx, "app2", ip2, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.agents.add(pod2, time.Now())
	alice := f.mustConnect("alice", clientOptions{})
	w := alice.Welcome().Operator
	if len(w.Pods) != 2 || w.Primary != f.env.App.Name {
		t.Fatalf("welcome operator info = %+v, want both pods and %s as primary", w, f.env.App.Name)
	}
	if _, err := alice.Subscribe(ctx, steal, newLocalServer(t, "alice").forwarder()); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []netip.Addr{localenv.AppIP, ip2} {
		if by := f.servedBy(ip, "/", nil); by != "local-alice" {
			t.Errorf("a request to %s served by %q, want alice", ip, by)
		}
	}
	st := f.b.Status(ctx)
	if st.Sessions != 1 || len(st.Agents) != 2 {
		t.Errorf("status = %+v", st)
	}

	// pod2 leaves the target (a scale down): its traffic goes back to
	// its app, the session is told.
	f.agents.remove(pod2.Name)
	if ev := alice.nextEvent(t); ev.Kind != wire.EventPodsChanged || len(ev.Pods) != 1 {
		t.Fatalf("event = %+v, want pods.changed with one pod", ev)
	}
	if by := f.servedBy(ip2, "/", nil); by != pod2.Hostname {
		t.Errorf("a request to the removed pod served by %q, want its app", by)
	}
	if by := f.servedBy(localenv.AppIP, "/", nil); by != "local-alice" {
		t.Errorf("a request to the remaining pod served by %q", by)
	}

	// A new pod (a scale up): the session's subscriptions follow.
	ip3 := netip.MustParseAddr("10.77.0.12")
	pod3, err := f.env.StartApp(ctx, "app3", ip3, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.agents.add(pod3, time.Now())
	if ev := alice.nextEvent(t); ev.Kind != wire.EventPodsChanged || len(ev.Pods) != 2 {
		t.Fatalf("event = %+v, want pods.changed with two pods", ev)
	}
	if by := f.servedBy(ip3, "/", nil); by != "local-alice" {
		t.Errorf("a request to the new pod served by %q, want alice", by)
	}
	// One agent connection per pod, shared: a second session dials none.
	bob := f.mustConnect("bob", clientOptions{})
	if _, err := bob.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeMirror}, newLocalServer(t, "bob").forwarder()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.env.App.Name, pod3.Name} {
		if n := f.agents.dials(p); n != 1 {
			t.Errorf("pod %s's agent was dialled %d times, want once", p, n)
		}
	}
}

func TestWatchFromAResourceVersion(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := testCtx(t)
	_, rv := f.b.List(ns)
	alice := f.mustConnect("alice", clientOptions{})
	name := alice.Welcome().Operator.Session
	events, err := f.b.Watch(ctx, ns, rv)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if ev.Type != backend.Added || ev.Session.Name != name || ev.Session.ResourceVersion == rv {
			t.Fatalf("first event after %s: %s %s rv %s", rv, ev.Type, ev.Session.Name, ev.Session.ResourceVersion)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no event")
	}
	if _, err := f.b.Watch(ctx, ns, "999999"); !errors.Is(err, backend.ErrExpired) {
		t.Errorf("watch from a future version: %v, want ErrExpired", err)
	}
	if _, err := f.b.Watch(ctx, "other", ""); err != nil {
		t.Errorf("watch of another namespace: %v", err)
	}
	if list, _ := f.b.List("other"); len(list) != 0 {
		t.Errorf("sessions in another namespace: %d", len(list))
	}
}

// An agent that restarts (its pod's agent Job recreated, the pod network
// cut): the broker dials the new one and subscribes the sessions again.
func TestSessionsSurviveAnAgentRestart(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := testCtx(t)
	alice := f.mustConnect("alice", clientOptions{})
	if _, err := alice.Subscribe(ctx, steal, newLocalServer(t, "alice").forwarder()); err != nil {
		t.Fatal(err)
	}
	if by := f.servedBy(localenv.AppIP, "/", nil); by != "local-alice" {
		t.Fatalf("served by %q", by)
	}
	f.agents.restart(f.env.App.Name)
	if err := poll.Until(ctx, 20*time.Second, func() error {
		if by := f.servedBy(localenv.AppIP, "/", nil); by != "local-alice" {
			return fmt.Errorf("served by %q after the agent restarted, want alice again", by)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := f.agents.dials(f.env.App.Name); n < 2 {
		t.Errorf("the agent was dialled %d times, want again after its restart", n)
	}
	// Control requests reach the new agent too.
	if err := alice.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownTargetIsRefused(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	server, client := net.Pipe()
	f.serves.Add(1)
	go func() {
		defer f.serves.Done()
		f.b.Serve(context.Background(), server, operator.UserInfo{Username: "alice"}, ns, "deployment.nope")
	}()
	defer client.Close()
	_, err := agentclient.New(testCtx(t), client, agentclient.Options{Name: "alice@laptop", Unauthenticated: true})
	if wire.CodeOf(err) != wire.CodeNotFound || !strings.Contains(err.Error(), "deployment.nope") {
		t.Fatalf("a session on an unknown target: %v, want not_found naming it", err)
	}
}
