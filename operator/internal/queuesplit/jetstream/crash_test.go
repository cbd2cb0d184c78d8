package jetstream

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/remocal/remocal/operator/internal/queuesplit"
	"github.com/remocal/remocal/operator/internal/queuesplit/splittest"
	qs "github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/poll"
)

// TestCrashBetweenPublishAndAck stops the router exactly where a crash
// hurts most: alice's copy published, the original not acknowledged. Her
// session then ends, so the redelivered message is routed to the deployed
// consumer instead; it must still be stored once.
func TestCrashBetweenPublishAndAck(t *testing.T) {
	envtest.RequireRoot(t)
	port := splittest.FreePort(t)
	splittest.StartServer(t, "nats-server", "-js", "-a", "127.0.0.1", "-p", splittest.Port(port), "-sd", t.TempDir())
	var nc *nats.Conn
	if err := poll.Until(t.Context(), 10*time.Second, func() (err error) {
		nc, err = nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), nats.NoReconnect())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{
		Durable: "workers", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "orders.new", Header: nats.Header{"tenant": {"a"}}, Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	b, err := New(nc, Config{Stream: "ORDERS", Durable: "workers"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := queuesplit.New(ctx, b, queuesplit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddSession(ctx, "alice", qs.Split{Consumer: "w", Mode: qs.ModeSteal, Filter: &qs.Filter{Headers: map[string]string{"tenant": "a"}}}); err != nil {
		t.Fatal(err)
	}
	src, err := b.Source(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := src.Fetch(ctx, 1, 5*time.Second)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v, %d messages", err, len(msgs))
	}
	// The crash: published to alice's queue, never acknowledged.
	if err := src.(*source).publish(ctx, []queuesplit.Delivery{{Msg: msgs[0], Owner: queuesplit.SessionQueue("alice")}}); err != nil {
		t.Fatal(err)
	}
	moved, err := r.RemoveSession(ctx, "alice")
	if err != nil || moved != 1 {
		t.Fatalf("removing alice: moved %d, %v; want her one message moved", moved, err)
	}
	if err := r.Settle(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, b.splitStream())
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().State.Msgs; got != 1 {
		t.Errorf("the split stream holds %d messages after the redelivery, want 1 (the message once, in the deployed consumer's queue)", got)
	}
	if n, err := r.Drain(ctx); err != nil || n != 1 {
		t.Errorf("drain: moved %d, %v; want 1", n, err)
	}
}
