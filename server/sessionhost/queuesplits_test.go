package sessionhost

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/syncbuf"
)

// Ready describes each split the operator granted (session.Session's
// QueueSplits, in the configuration's order) with the mode and filter the
// configuration asked for: what the IDEs show beside the ports. Only the
// real operator grants splits (test/e2e/operator TestQueueSplit); here the
// host's translation is given what a session records.
func TestQueueSplitsDescribeWhatWasGranted(t *testing.T) {
	asked := []queuesplit.Split{
		{Consumer: "orders-worker", Mode: queuesplit.ModeSteal, Filter: &queuesplit.Filter{Headers: map[string]string{"tenant": "a"}}},
		{Consumer: "orders-worker", Queue: "invoices", Filter: &queuesplit.Filter{Body: map[string]string{"$.amount": "4[2-9]"}}},
	}
	granted := []wire.QueueSplitResult{
		{ID: "orders-worker/orders", Queue: "orders", Env: map[string]string{"ORDERS_STREAM": "{orders}.remocal.session-s-1", "ORDERS_GROUP": "workers"}},
		{ID: "orders-worker/invoices", Queue: "invoices"},
	}
	got := queueSplits(asked, granted)
	want := []daemon.QueueSplit{
		// The operator names the queue the configuration left out.
		{Consumer: "orders-worker", Queue: "orders", Mode: queuesplit.ModeSteal, Filter: &queuesplit.Filter{Headers: map[string]string{"tenant": "a"}},
			Env: map[string]string{"ORDERS_STREAM": "{orders}.remocal.session-s-1", "ORDERS_GROUP": "workers"}},
		// No mode is mirror; no variables is an empty map, as the
		// contract's "env" is always there.
		{Consumer: "orders-worker", Queue: "invoices", Mode: queuesplit.ModeMirror, Filter: &queuesplit.Filter{Body: map[string]string{"$.amount": "4[2-9]"}},
			Env: map[string]string{}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("queueSplits (-want +got):\n%s", diff)
	}
	// The description is the daemon's own: changing what the session
	// recorded does not change it.
	granted[0].Env["ORDERS_STREAM"] = "changed"
	asked[0].Filter.Headers["tenant"] = "changed"
	if got[0].Env["ORDERS_STREAM"] != "{orders}.remocal.session-s-1" || got[0].Filter.Headers["tenant"] != "a" {
		t.Errorf("the description shares maps with the session: %+v", got[0])
	}
	if got := queueSplits(nil, nil); got != nil {
		t.Errorf("no splits: %+v, want nil (absent from the session)", got)
	}
	// An entry with no answer is not shown as granted.
	if got := queueSplits(asked, granted[:1]); len(got) != 1 || got[0].Queue != "orders" {
		t.Errorf("one answer for two entries: %+v", got)
	}
}

// A session without splits has no queueSplits; one that asks for splits
// of a target reached without the operator does not start, and says why
// and what to do.
func TestQueueSplitsNeedTheOperator(t *testing.T) {
	env := envtest.New(t)
	h := startHost(t, appSpec(t, env, "s1"))
	if qs := h.Ready().QueueSplits; qs != nil {
		t.Errorf("Ready.QueueSplits = %+v for a session without splits", qs)
	}

	spec := appSpec(t, env, "s2")
	spec.Config.QueueSplits = []queuesplit.Split{{Consumer: "orders-worker", Mode: queuesplit.ModeSteal}}
	log := &syncbuf.Buffer{}
	spec.Log = log.Line
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h2, err := Start(ctx, built(t, "remocal"), spec, nil)
	if err == nil {
		h2.Stop(ctx)
		t.Fatal("a session with queueSplits started without the operator")
	}
	var de *daemon.Error
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "queueSplits need remocal's operator") || !strings.Contains(err.Error(), "kubernetes.operator") {
		t.Errorf("error %v (%T); want the operator named and what to do", err, err)
	}
	if _, err := os.Stat(spec.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket of the failed session: %v, want none", err)
	}
	t.Logf("host output:\n%s", log)
}
