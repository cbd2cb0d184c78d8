package server

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/server/sessionhost"
)

// What the session host reports as it becomes ready (its Ready, with the
// queues session.Session.QueueSplits says the operator split) is what
// every client sees of the session: start result, list, sessionChanged.
// The host's side is server/sessionhost's TestQueueSplitsDescribeWhatWasGranted;
// here Ready crosses the host's JSON-RPC connection as JSON first.
func TestReadyInfoCarriesQueueSplits(t *testing.T) {
	splits := []daemon.QueueSplit{{Consumer: "orders-worker", Queue: "orders", Mode: queuesplit.ModeSteal,
		Filter: &queuesplit.Filter{Headers: map[string]string{"tenant": "a"}}, Env: map[string]string{"ORDERS_STREAM": "{orders}.remocal.session-s-1"}}}
	sent, err := json.Marshal(sessionhost.Ready{Env: map[string]string{}, Warnings: []string{}, Incoming: "steal",
		Resolved: "deployment/orders-worker (pod shop/w-1, container worker)", QueueSplits: splits})
	if err != nil {
		t.Fatal(err)
	}
	var ready sessionhost.Ready
	if err := json.Unmarshal(sent, &ready); err != nil {
		t.Fatal(err)
	}
	starting := daemon.Session{ID: "s1", Target: "deployment/orders-worker", State: daemon.StateStarting}
	got := readyInfo(starting, ready)
	want := starting
	want.Incoming, want.Resolved, want.QueueSplits = "steal", "deployment/orders-worker (pod shop/w-1, container worker)", splits
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("session once ready (-want +got):\n%s", diff)
	}
	// Without splits the field stays absent from what clients get.
	got = readyInfo(starting, sessionhost.Ready{Incoming: "mirror"})
	b, _ := json.Marshal(got)
	if got.QueueSplits != nil || containsKey(b, "queueSplits") {
		t.Errorf("a session without splits: %s", b)
	}
}

func containsKey(b []byte, key string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	_, ok := m[key]
	return ok
}
