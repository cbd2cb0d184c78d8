package redisstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/remocal/remocal/operator/internal/queuesplit"
	"github.com/remocal/remocal/operator/internal/queuesplit/redisstream"
	"github.com/remocal/remocal/operator/internal/queuesplit/splittest"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/poll"
)

func TestMain(m *testing.M) { splittest.Main(m, openBroker) }

const (
	stream = "orders"
	group  = "workers"
)

type harness struct {
	addr string
	rdb  *redis.Client
}

// start runs redis-server on a loopback port of the test's namespace,
// with the original stream and the deployed consumer's group.
func start(t testing.TB) *harness {
	t.Helper()
	envtest.RequireRoot(t)
	port := splittest.FreePort(t)
	splittest.StartServer(t, "redis-server", "--port", splittest.Port(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	h := &harness{addr: fmt.Sprintf("127.0.0.1:%d", port)}
	h.rdb = h.client(t)
	if err := poll.Until(t.Context(), 10*time.Second, func() error { return h.rdb.Ping(t.Context()).Err() }); err != nil {
		t.Fatal(err)
	}
	if err := h.rdb.XGroupCreateMkStream(t.Context(), stream, group, "$").Err(); err != nil {
		t.Fatal(err)
	}
	if err := h.rdb.XGroupCreateConsumer(t.Context(), stream, group, "deployed").Err(); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: h.addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (h *harness) Addr() string { return h.addr }

func (h *harness) Broker(t testing.TB) queuesplit.Broker {
	b, err := redisstream.New(h.client(t), redisstream.Config{Stream: stream, Group: group})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *harness) Publish(ctx context.Context, n int, tenant string, extra map[string]string) error {
	body, _ := json.Marshal(map[string]any{"n": n, "tenant": tenant})
	values := []any{"tenant", tenant, "n", n, "body", body}
	for k, v := range extra {
		values = append(values, k, v)
	}
	return h.rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: values}).Err()
}

// Consume reads as a careful Redis consumer does: its own pending entries
// first (left by a stop mid-read), then new ones.
func (h *harness) Consume(ctx context.Context, env queuesplit.Env, name string, got func(splittest.Received)) error {
	rdb := redis.NewClient(&redis.Options{Addr: h.addr})
	defer rdb.Close()
	from := "0"
	for ctx.Err() == nil {
		// Not ctx: a read is never cut off, so what it took is processed.
		res, err := rdb.XReadGroup(context.Background(), &redis.XReadGroupArgs{
			Group: env.Group, Consumer: name, Streams: []string{env.Stream, from}, Count: 50, Block: 50 * time.Millisecond,
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s reading %s: %w", name, env.Stream, err)
		}
		if len(res) == 0 || len(res[0].Messages) == 0 {
			from = ">"
			continue
		}
		for _, m := range res[0].Messages {
			r, err := received(m)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			got(r)
			if err := rdb.XAck(context.Background(), env.Stream, env.Group, m.ID).Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

func received(m redis.XMessage) (splittest.Received, error) {
	var body struct {
		N      int    `json:"n"`
		Tenant string `json:"tenant"`
	}
	s, _ := m.Values["body"].(string)
	if err := json.Unmarshal([]byte(s), &body); err != nil {
		return splittest.Received{}, fmt.Errorf("entry %s: body %q: %w", m.ID, s, err)
	}
	r := splittest.Received{N: body.N, Tenant: body.Tenant, Headers: map[string][]string{}}
	for k, v := range m.Values {
		s, _ := v.(string)
		r.Headers[k] = []string{s}
	}
	if r.Headers["tenant"][0] != body.Tenant || r.Headers["n"][0] != fmt.Sprint(body.N) {
		return r, fmt.Errorf("entry %s: fields %v do not match its body %s", m.ID, m.Values, s)
	}
	return r, nil
}

// State lists the keys and, for each stream, its groups and their
// consumers.
func (h *harness) State(ctx context.Context) (string, error) {
	keys, err := h.rdb.Keys(ctx, "*").Result()
	if err != nil {
		return "", err
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		groups, err := h.rdb.XInfoGroups(ctx, k).Result()
		if err != nil {
			return "", err
		}
		var gs []string
		for _, g := range groups {
			cs, err := h.rdb.XInfoConsumers(ctx, k, g.Name).Result()
			if err != nil {
				return "", err
			}
			var names []string
			for _, c := range cs {
				names = append(names, c.Name)
			}
			sort.Strings(names)
			gs = append(gs, fmt.Sprintf("%s%v", g.Name, names))
		}
		parts = append(parts, fmt.Sprintf("%s{%s}", k, strings.Join(gs, " ")))
	}
	return strings.Join(parts, " "), nil
}

func TestSteal(t *testing.T) {
	splittest.Steal(t, start(t), poll.Until, 10*time.Second, true)
}

func TestMirror(t *testing.T) {
	splittest.Mirror(t, start(t), poll.Until, 10*time.Second, true)
}

// BenchmarkRouting: go test -run '^$' -bench Routing -benchtime 1x -count 3
func BenchmarkRouting(b *testing.B) {
	splittest.Bench(b, start(b), 20000, 1000)
}

// openBroker is the broker of a router process (splittest.RouterProcess).
func openBroker(addr string) (queuesplit.Broker, error) {
	return redisstream.New(redis.NewClient(&redis.Options{Addr: addr}), redisstream.Config{Stream: stream, Group: group})
}
