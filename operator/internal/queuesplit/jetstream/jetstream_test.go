package jetstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/remocal/remocal/operator/internal/queuesplit"
	qsjs "github.com/remocal/remocal/operator/internal/queuesplit/jetstream"
	"github.com/remocal/remocal/operator/internal/queuesplit/splittest"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/poll"
)

func TestMain(m *testing.M) { splittest.Main(m, openBroker) }

const (
	stream  = "ORDERS"
	durable = "workers"
	// ackWait of the deployed consumer: what a crashed router left
	// unacknowledged comes back after it.
	ackWait = time.Second
)

type harness struct {
	url string
	nc  *nats.Conn
	js  jetstream.JetStream
}

// start runs nats-server with JetStream on a loopback port of the test's
// namespace, with the original stream and the deployed consumer's
// durable pull consumer.
func start(t testing.TB) *harness {
	t.Helper()
	envtest.RequireRoot(t)
	port := splittest.FreePort(t)
	splittest.StartServer(t, "nats-server", "-js", "-a", "127.0.0.1", "-p", splittest.Port(port), "-sd", t.TempDir())
	h := &harness{url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	if err := poll.Until(t.Context(), 10*time.Second, func() error {
		nc, err := nats.Connect(h.url, nats.NoReconnect())
		if err == nil {
			h.nc = nc
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.nc.Close)
	var err error
	if h.js, err = jetstream.New(h.nc); err != nil {
		t.Fatal(err)
	}
	if _, err := h.js.CreateStream(t.Context(), jetstream.StreamConfig{Name: stream, Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.js.CreateOrUpdateConsumer(t.Context(), stream, jetstream.ConsumerConfig{
		Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, FilterSubject: "orders.>",
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) conn(t testing.TB) *nats.Conn {
	nc, err := nats.Connect(h.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func (h *harness) Addr() string { return h.url }

func (h *harness) Broker(t testing.TB) queuesplit.Broker {
	b, err := qsjs.New(h.conn(t), qsjs.Config{Stream: stream, Durable: durable, Subject: "orders.>"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *harness) Publish(ctx context.Context, n int, tenant string, extra map[string]string) error {
	body, _ := json.Marshal(map[string]any{"n": n, "tenant": tenant})
	m := &nats.Msg{Subject: "orders.new", Header: nats.Header{"tenant": {tenant}, "n": {fmt.Sprint(n)}}, Data: body}
	for k, v := range extra {
		m.Header.Set(k, v)
	}
	_, err := h.js.PublishMsg(ctx, m)
	return err
}

// Consume pulls from the durable env names, as the workload does.
func (h *harness) Consume(ctx context.Context, env queuesplit.Env, name string, got func(splittest.Received)) error {
	nc, err := nats.Connect(h.url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	c, err := js.Consumer(ctx, env.Stream, env.Group)
	if err != nil {
		return fmt.Errorf("%s: consumer %s of %s: %w", name, env.Group, env.Stream, err)
	}
	for ctx.Err() == nil {
		// Not ctx: a pull is never cut off, so what it took is processed.
		// What is there at once, else wait for one message (a full
		// batch would wait for the whole expiry).
		batch, err := c.FetchNoWait(50)
		if err == nil {
			var ms []jetstream.Msg
			for m := range batch.Messages() {
				ms = append(ms, m)
			}
			if len(ms) == 0 {
				batch, err = c.Fetch(1, jetstream.FetchMaxWait(50*time.Millisecond))
			} else {
				batch = replay(ms)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for m := range batch.Messages() {
			r, err := received(m)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			got(r)
			if err := m.DoubleAck(context.Background()); err != nil {
				return fmt.Errorf("%s: acknowledging %d: %w", name, r.N, err)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// replay is a finished batch of messages already read.
type replay []jetstream.Msg

func (r replay) Messages() <-chan jetstream.Msg {
	ch := make(chan jetstream.Msg, len(r))
	for _, m := range r {
		ch <- m
	}
	close(ch)
	return ch
}

func (replay) Error() error { return nil }

func received(m jetstream.Msg) (splittest.Received, error) {
	var body struct {
		N      int    `json:"n"`
		Tenant string `json:"tenant"`
	}
	if err := json.Unmarshal(m.Data(), &body); err != nil {
		return splittest.Received{}, fmt.Errorf("message on %s: body %q: %w", m.Subject(), m.Data(), err)
	}
	h := m.Headers()
	if h.Get("tenant") != body.Tenant || h.Get("n") != fmt.Sprint(body.N) || !strings.HasSuffix(m.Subject(), "orders.new") {
		return splittest.Received{}, fmt.Errorf("message on %s: headers %v do not match its body %s", m.Subject(), h, m.Data())
	}
	return splittest.Received{N: body.N, Tenant: body.Tenant, Headers: h}, nil
}

// State lists the streams and their consumers.
func (h *harness) State(ctx context.Context) (string, error) {
	var parts []string
	names := h.js.StreamNames(ctx)
	for n := range names.Name() {
		st, err := h.js.Stream(ctx, n)
		if err != nil {
			return "", err
		}
		var cs []string
		lister := st.ConsumerNames(ctx)
		for c := range lister.Name() {
			cs = append(cs, c)
		}
		if err := lister.Err(); err != nil {
			return "", err
		}
		slices.Sort(cs)
		parts = append(parts, fmt.Sprintf("%s%v", n, cs))
	}
	if err := names.Err(); err != nil {
		return "", err
	}
	slices.Sort(parts)
	return strings.Join(parts, " "), nil
}

// Redelivery after a crash comes after AckWait, behind newer messages, so
// the steal test does not check the order of alice's and bob's messages.
func TestSteal(t *testing.T) {
	splittest.Steal(t, start(t), poll.Until, 10*ackWait, false)
}

func TestMirror(t *testing.T) {
	splittest.Mirror(t, start(t), poll.Until, 10*ackWait, false)
}

// BenchmarkRouting: go test -run '^$' -bench Routing -benchtime 1x -count 3
func BenchmarkRouting(b *testing.B) {
	splittest.Bench(b, start(b), 20000, 1000)
}

// openBroker is the broker of a router process (splittest.RouterProcess).
func openBroker(url string) (queuesplit.Broker, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, err
	}
	return qsjs.New(nc, qsjs.Config{Stream: stream, Durable: durable, Subject: "orders.>"})
}
