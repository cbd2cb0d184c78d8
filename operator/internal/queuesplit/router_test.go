package queuesplit

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	qs "github.com/remocal/remocal/protocol/queuesplit"
)

// queuesOnly is a Broker that only creates queues: the seam for the
// routing decisions; the brokers' own tests run the router for real.
type queuesOnly struct{ Broker }

func (queuesOnly) CreateQueue(_ context.Context, name string) (Env, error) {
	return Env{Stream: name}, nil
}

func TestRouteDecisions(t *testing.T) {
	r, err := New(t.Context(), queuesOnly{}, Options{MaxBodyBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(k, v string) *qs.Filter { return &qs.Filter{Headers: map[string]string{k: v}} }
	for _, s := range []struct {
		id    string
		split qs.Split
	}{
		{"alice", qs.Split{Consumer: "w", Mode: qs.ModeSteal, Filter: hdr("tenant", "a")}},
		{"bob", qs.Split{Consumer: "w", Mode: qs.ModeSteal, Filter: hdr("region", "eu")}},
		{"carol", qs.Split{Consumer: "w", Mode: qs.ModeMirror, Filter: hdr("tenant", "a|b")}},
		{"dave", qs.Split{Consumer: "w", Mode: qs.ModeSteal, Filter: &qs.Filter{Body: map[string]string{"$.vip": "true"}}}},
	} {
		if _, err := r.AddSession(t.Context(), s.id, s.split); err != nil {
			t.Fatal(err)
		}
	}
	msg := func(tenant, region, body string) *Message {
		return &Message{Headers: map[string][]string{"tenant": {tenant}, "region": {region}}, Body: []byte(body)}
	}
	for _, tc := range []struct {
		name   string
		m      *Message
		owner  string
		copies []string
	}{
		{"alice's", msg("a", "us", ""), "session-alice", []string{"session-carol"}},
		{"alice's and bob's: the older split wins", msg("a", "eu", ""), "session-alice", []string{"session-carol"}},
		{"bob's", msg("b", "eu", ""), "session-bob", []string{"session-carol"}},
		{"nobody's but a mirror's", msg("b", "us", ""), DeployedQueue, []string{"session-carol"}},
		{"nobody's", msg("c", "us", `{"vip":false}`), DeployedQueue, nil},
		{"dave's by the body", msg("c", "us", `{"vip":true}`), "session-dave", nil},
		{"a body over the bound matches no body filter", msg("c", "us", `{"vip":true,"pad":"`+strings.Repeat("x", 64)+`"}`), DeployedQueue, nil},
	} {
		batch, _ := r.route([]*Message{tc.m})
		if d := batch[0]; d.Owner != tc.owner || !slices.Equal(d.Copies, tc.copies) {
			t.Errorf("%s: owner %q copies %v, want %q %v", tc.name, d.Owner, d.Copies, tc.owner, tc.copies)
		}
	}
	if r.Oversized() != 1 {
		t.Errorf("Oversized = %d, want 1", r.Oversized())
	}
	var ce *ConflictError
	if _, err := r.AddSession(t.Context(), "erin", qs.Split{Consumer: "w", Mode: qs.ModeSteal, Filter: hdr("tenant", "a")}); !errors.As(err, &ce) || ce.Holder != "alice" {
		t.Errorf("erin stealing alice's tenant: %v, want a conflict naming alice", err)
	} else if !strings.Contains(err.Error(), "use mirror mode") {
		t.Errorf("the conflict does not say what to do: %v", err)
	}
	if _, err := r.AddSession(t.Context(), "Erin!", qs.Split{Consumer: "w"}); err == nil {
		t.Error("a session id with capitals and punctuation was accepted")
	}
	if _, err := r.AddSession(t.Context(), "erin", qs.Split{Consumer: "w", Mode: "copy"}); err == nil || !strings.Contains(err.Error(), `mode: got "copy"`) {
		t.Errorf("a bad mode: %v", err)
	}
}
