package session

import (
	"bytes"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/wire"
)

// What the operator pushes is shown at once, and reported as data: a port
// taken by an override as a conflict (Taken), a session the operator
// ended as the session's end.
func TestServerEvents(t *testing.T) {
	var stderr bytes.Buffer
	var got []Event
	opts := Options{Stderr: &stderr, OnEvent: func(ev Event) { got = append(got, ev) }}
	s := &Session{aborted: make(chan struct{})}
	var self atomic.Pointer[Session]
	self.Store(s)

	carol := &wire.Holder{Client: "carol@desk", User: "carol", Session: "s-carol", Port: 8080, Mode: wire.ModeSteal}
	serverEvent(opts, &self, wire.Event{Kind: wire.EventSubscriptionLost, Subscription: "s1", Port: 8080, By: carol,
		Message: "port 8080 was taken by carol (carol@desk) with an override"})
	if len(got) != 1 || got[0].Kind != daemon.EventSubscribeFailed || !got[0].Taken || got[0].Holder != carol || got[0].RemotePort != 8080 {
		t.Errorf("subscription.lost reported as %+v", got)
	}
	if !strings.Contains(stderr.String(), "remocal: port 8080 was taken by carol") {
		t.Errorf("stderr %q", stderr.String())
	}
	select {
	case <-s.Aborted():
		t.Fatal("a lost port ended the session")
	default:
	}

	serverEvent(opts, &self, wire.Event{Kind: wire.EventSessionEnded, Message: "your session was deleted by admin"})
	select {
	case <-s.Aborted():
	default:
		t.Fatal("session.ended did not end the session")
	}
	if err := s.AbortErr(); !errors.Is(err, ErrEndedByOperator) || !strings.Contains(err.Error(), "deleted by admin") {
		t.Errorf("AbortErr = %v", err)
	}
	// Kinds this client does not know are shown and carried on.
	serverEvent(opts, &self, wire.Event{Kind: "future.kind", Message: "something new"})
	if last := got[len(got)-1]; last.Kind != daemon.EventWarning || last.Message != "something new" {
		t.Errorf("unknown kind reported as %+v", last)
	}
}
