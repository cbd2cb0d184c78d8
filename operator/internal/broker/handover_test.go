package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/wire"
)

// TestHandoverToANewLeader: the leader stops (its server cuts the
// upgraded connections, then its broker closes), and the client, naming
// its session, reaches the new leader, which knows nothing of it: the
// session keeps its name there, the agents that run are reused, and the
// client's port is stolen again once it subscribes again. The client is
// not told the session ended: it was handed over, not ended.
func TestHandoverToANewLeader(t *testing.T) {
	f := newFixture(t, fixtureOptions{sessionTTL: time.Minute})
	ctx := testCtx(t)
	alice := f.mustConnect("alice", clientOptions{})
	name := alice.Welcome().Operator.Session
	spec := wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "alice"}}}
	if _, err := alice.Subscribe(ctx, spec, newLocalServer(t, "alice").forwarder()); err != nil {
		t.Fatal(err)
	}
	if by := f.servedBy(localenv.AppIP, "/", hdr("X-User", "alice")); by != "local-alice" {
		t.Fatalf("before the handover alice's request was served by %q", by)
	}
	dials := f.agents.dials("app")

	// The leader stops: connections first, then the broker.
	old := f.b
	f.stopServing()
	select {
	case <-alice.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the client's connection outlived the stopping leader")
	}
	old.Close()
	// The traffic went back to the application meanwhile.
	if by := f.servedBy(localenv.AppIP, "/", hdr("X-User", "alice")); by != f.env.App.Hostname {
		t.Errorf("between leaders alice's request was served by %q, want the application", by)
	}
	select {
	case ev := <-alice.events:
		t.Errorf("the stopping leader told the client %+v; a handover is not the session's end", ev)
	default:
	}

	// The new leader.
	f.serveCtx, f.stopServing = context.WithCancel(context.Background())
	f.b = f.newBroker("operator-1", fixtureOptions{sessionTTL: time.Minute})
	again := f.mustConnect("alice", clientOptions{session: name})
	if got := again.Welcome().Operator.Session; got != name {
		t.Fatalf("after the handover the session is %q, want %q", got, name)
	}
	if _, err := again.Subscribe(ctx, spec, newLocalServer(t, "alice-again").forwarder()); err != nil {
		t.Fatalf("alice subscribing again on the new leader: %v", err)
	}
	if by := f.servedBy(localenv.AppIP, "/", hdr("X-User", "alice")); by != "local-alice-again" {
		t.Fatalf("after the handover alice's request was served by %q", by)
	}
	s, ok := f.b.Get(ns, name)
	if !ok || s.Spec.User.Username != "alice" || s.Status.Phase != operator.PhaseActive || len(s.Status.Ports) != 1 {
		t.Errorf("the session on the new leader: %v %+v", ok, s)
	}
	// The new leader dialled the agent that ran; none was started anew
	// (the local agents count dials; the cluster's join their Job).
	if got := f.agents.dials("app"); got != dials+1 {
		t.Errorf("the new leader dialled the agent %d times", got-dials)
	}

	// Someone else naming a session the new leader does not know, in a
	// form no session has, gets a fresh name.
	bob := f.mustConnect("bob", clientOptions{session: "not-a-session"})
	if got := bob.Welcome().Operator.Session; got == "not-a-session" {
		t.Errorf("bob's made-up session name was adopted")
	}
}
