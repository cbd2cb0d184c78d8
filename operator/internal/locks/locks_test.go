package locks

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/wire"
)

var key = Key{Namespace: "shop", Target: "deployment.api", Port: 8080}

// clock is an injectable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 12, 7, 10, 2, 0, 0, time.UTC)} }

func headers(kv ...string) *wire.HTTPFilter {
	f := &wire.HTTPFilter{Headers: map[string]string{}}
	for i := 0; i < len(kv); i += 2 {
		f.Headers[kv[i]] = kv[i+1]
	}
	return f
}

func req(user, sub string, mode wire.Mode, f *wire.HTTPFilter) Request {
	return Request{
		Key:          key,
		Owner:        Owner{User: user, Client: user + "@laptop", Session: "s-" + user},
		Subscription: sub, Mode: mode, Filter: f,
	}
}

func steal(user string, f *wire.HTTPFilter) Request { return req(user, "o-"+user, wire.ModeSteal, f) }

func TestAcquireDecisions(t *testing.T) {
	withMethods := func(f *wire.HTTPFilter, m ...string) *wire.HTTPFilter { f.Methods = m; return f }
	cases := []struct {
		name     string
		held     Request
		want     Request
		conflict bool
	}{
		{"different header values coexist", steal("alice", headers("x-user", "alice")), steal("bob", headers("x-user", "bob")), false},
		{"a subset conflicts", steal("alice", headers("x-user", "alice", "x-env", "dev")), steal("bob", headers("x-user", "alice")), true},
		{"header beats path-only", steal("alice", &wire.HTTPFilter{Path: "/api/.*"}), steal("bob", headers("x-user", "bob")), false},
		{"unfiltered is exclusive", steal("alice", headers("x-user", "alice")), steal("carol", nil), true},
		{"unfiltered blocks filtered", steal("alice", nil), steal("bob", headers("x-user", "bob")), true},
		{"disjoint methods", steal("alice", withMethods(headers("x-user", "a"), "GET")), steal("bob", withMethods(headers("x-user", "a"), "POST")), false},
		{"mirror beside unfiltered steal", steal("alice", nil), req("bob", "o-bob", wire.ModeMirror, nil), false},
		{"other port", steal("alice", nil), func() Request { r := steal("bob", nil); r.Port = 9090; return r }(), false},
		{"other target", steal("alice", nil), func() Request { r := steal("bob", nil); r.Target = "deployment.web"; return r }(), false},
		{"same session, live lock", steal("alice", nil), req("alice", "o-2", wire.ModeSteal, nil), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tab := New(newClock().now)
			if _, _, err := tab.Acquire(c.held); err != nil {
				t.Fatal(err)
			}
			_, _, err := tab.Acquire(c.want)
			var ce *ConflictError
			if got := errors.As(err, &ce); got != c.conflict {
				t.Fatalf("conflict = %v (%v), want %v", got, err, c.conflict)
			}
			if c.conflict && (ce.Holder.Session != c.held.Session || ce.Holder.Subscription != c.held.Subscription) {
				t.Errorf("holder = %+v, want %s's", ce.Holder, c.held.Session)
			}
		})
	}
}

func TestConflictNamesTheHolder(t *testing.T) {
	clk := newClock()
	tab := New(clk.now)
	if _, _, err := tab.Acquire(steal("bob", headers("x-user", "bob"))); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Minute)
	_, _, err := tab.Acquire(steal("carol", nil))
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *ConflictError", err)
	}
	msg := err.Error()
	for _, want := range []string{"port 8080 of shop/deployment.api", `header X-User="bob"`, "bob (bob@laptop, session s-bob)", "since 2026-12-07T10:02:00Z", "override"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	we := ce.Wire()
	if we.Code != wire.CodeConflict || we.Holder == nil || we.Holder.User != "bob" || we.Holder.Session != "s-bob" ||
		we.Holder.Client != "bob@laptop" || we.Holder.Subscription != "o-bob" || we.Holder.Filter == nil ||
		we.Holder.Since == nil || !we.Holder.Since.Equal(newClock().t) {
		t.Errorf("wire error = %+v holder %+v", we, we.Holder)
	}
}

func TestOverrideTransfersTheLock(t *testing.T) {
	tab := New(newClock().now)
	for _, r := range []Request{steal("alice", headers("x-user", "alice")), steal("bob", headers("x-user", "bob"))} {
		if _, _, err := tab.Acquire(r); err != nil {
			t.Fatal(err)
		}
	}
	carol := steal("carol", nil)
	carol.Override = true
	_, evicted, err := tab.Acquire(carol)
	if err != nil {
		t.Fatal(err)
	}
	if len(evicted) != 2 || evicted[0].Session == evicted[1].Session {
		t.Fatalf("evicted = %+v, want alice's and bob's locks", evicted)
	}
	held := tab.Held(key)
	if len(held) != 1 || held[0].Session != "s-carol" {
		t.Fatalf("held after override = %+v, want carol's alone", held)
	}
	// The evicted now conflict in turn.
	if _, _, err := tab.Acquire(steal("bob", headers("x-user", "bob"))); err == nil {
		t.Fatal("bob took the port back from carol's unfiltered steal")
	}
}

func TestOverrideNeverEvictsItsOwnSession(t *testing.T) {
	tab := New(newClock().now)
	if _, _, err := tab.Acquire(steal("alice", nil)); err != nil {
		t.Fatal(err)
	}
	again := req("alice", "o-2", wire.ModeSteal, nil)
	again.Override = true
	if _, _, err := tab.Acquire(again); err == nil {
		t.Fatal("a session overrode its own live lock")
	}
}

func TestReservedLocksUntilTheirTTL(t *testing.T) {
	clk := newClock()
	tab := New(clk.now)
	if _, _, err := tab.Acquire(steal("alice", nil)); err != nil {
		t.Fatal(err)
	}
	tab.Reserve("s-alice", clk.t.Add(30*time.Second))
	clk.advance(29 * time.Second)
	_, _, err := tab.Acquire(steal("bob", nil))
	var ce *ConflictError
	if !errors.As(err, &ce) || !ce.Holder.Reserved() || !strings.Contains(err.Error(), "disconnected session until") {
		t.Fatalf("bob during alice's reservation: %v", err)
	}
	clk.advance(time.Second)
	if _, _, err := tab.Acquire(steal("bob", nil)); err != nil {
		t.Fatalf("bob after alice's reservation expired: %v", err)
	}
	if got := tab.Session("s-alice"); len(got) != 0 {
		t.Errorf("alice still holds %+v", got)
	}
}

func TestResumedSessionTakesBackItsReservation(t *testing.T) {
	clk := newClock()
	tab := New(clk.now)
	if _, _, err := tab.Acquire(steal("alice", headers("x-user", "alice"))); err != nil {
		t.Fatal(err)
	}
	tab.Reserve("s-alice", clk.t.Add(30*time.Second))
	clk.advance(10 * time.Second)
	// The reconnected client subscribes again (a new subscription id).
	again := req("alice", "o-9", wire.ModeSteal, headers("x-user", "alice"))
	held, _, err := tab.Acquire(again)
	if err != nil {
		t.Fatalf("the resumed session re-subscribing: %v", err)
	}
	if !held.Since.Equal(newClock().t) {
		t.Errorf("the lock taken back is held since %v, want the first time", held.Since)
	}
	got := tab.Session("s-alice")
	if len(got) != 1 || got[0].Subscription != "o-9" || got[0].Reserved() || !got[0].Since.Equal(newClock().t) {
		t.Fatalf("alice's locks = %+v, want one live lock o-9 since the first", got)
	}
	clk.advance(time.Hour)
	if got := tab.Session("s-alice"); len(got) != 1 {
		t.Fatalf("a taken-back lock expired with the old reservation: %+v", got)
	}
}

func TestReleases(t *testing.T) {
	tab := New(newClock().now)
	for _, r := range []Request{steal("alice", headers("x-user", "alice")), steal("bob", headers("x-user", "bob"))} {
		if _, _, err := tab.Acquire(r); err != nil {
			t.Fatal(err)
		}
	}
	mirror := req("alice", "o-m", wire.ModeMirror, nil)
	if _, _, err := tab.Acquire(mirror); err != nil {
		t.Fatal(err)
	}
	if n := len(tab.Session("s-alice")); n != 1 {
		t.Fatalf("alice holds %d locks; a mirror takes none", n)
	}
	tab.Release(key, "s-alice", "o-alice")
	if n := len(tab.Held(key)); n != 1 {
		t.Fatalf("%d locks after alice released hers", n)
	}
	if got := tab.ReleaseSession("s-bob"); len(got) != 1 {
		t.Fatalf("ReleaseSession returned %+v", got)
	}
	if n := len(tab.Held(key)); n != 0 {
		t.Fatalf("%d locks after every release", n)
	}
	if _, _, err := tab.Acquire(steal("carol", nil)); err != nil {
		t.Fatal(err)
	}
}
