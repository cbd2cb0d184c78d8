// Package redisstream splits a Redis stream read by a consumer group
// (queuesplit.Broker). The router reads the original stream as one more
// consumer of the deployed consumer's group, and moves entries with Lua
// scripts that write and acknowledge in one atomic step (scripts.go).
package redisstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/remocal/remocal/operator/internal/queuesplit"
)

// Config names the original stream and how it is consumed.
type Config struct {
	// Stream is the original stream's key, Group the deployed consumer's
	// group on it.
	Stream string
	Group  string
	// BodyField is the field whose value filters' JSON paths read
	// ("body" when empty).
	BodyField string
	// Consumer is the router's consumer name in Group
	// ("remocal-router" when empty). A router started again must use the
	// same name to take over what it had not acknowledged.
	Consumer string
}

// Broker is a Redis server holding the original stream.
type Broker struct {
	rdb *redis.Client
	cfg Config
}

var _ queuesplit.Broker = (*Broker)(nil)

// New returns the broker for cfg over rdb; Close does not close rdb.
func New(rdb *redis.Client, cfg Config) (*Broker, error) {
	if cfg.Stream == "" || cfg.Group == "" {
		return nil, errors.New("redisstream: the stream and the group are required")
	}
	if cfg.BodyField == "" {
		cfg.BodyField = "body"
	}
	if cfg.Consumer == "" {
		cfg.Consumer = "remocal-router"
	}
	return &Broker{rdb: rdb, cfg: cfg}, nil
}

// Original implements queuesplit.Broker.
func (b *Broker) Original() queuesplit.Env {
	return queuesplit.Env{Stream: b.cfg.Stream, Group: b.cfg.Group}
}

// key is the temporary stream of queue name. It shares the original's
// hash slot, so that the scripts, which touch both, also work on a Redis
// Cluster: the original's own hash tag if it has one, else the whole key
// as the tag.
func (b *Broker) key(name string) string {
	return b.prefix() + name
}

func (b *Broker) prefix() string {
	s := b.cfg.Stream
	if i := strings.IndexByte(s, '{'); i >= 0 {
		if j := strings.IndexByte(s[i+1:], '}'); j > 0 {
			return s + ".remocal."
		}
	}
	return "{" + s + "}.remocal."
}

// Source implements queuesplit.Broker.
func (b *Broker) Source(ctx context.Context) (queuesplit.Source, error) {
	if err := b.checkGroup(ctx); err != nil {
		return nil, err
	}
	return &source{b: b, pending: true}, nil
}

func (b *Broker) checkGroup(ctx context.Context) error {
	n, err := b.rdb.Exists(ctx, b.cfg.Stream).Result()
	if err != nil {
		return fmt.Errorf("looking for stream %q: %w", b.cfg.Stream, err)
	}
	if n == 0 {
		return fmt.Errorf("stream %q: %w; is the workload consuming it?", b.cfg.Stream, queuesplit.ErrNotFound)
	}
	if ok, err := b.hasGroup(ctx, b.cfg.Stream); err != nil || ok {
		return err
	}
	return fmt.Errorf("consumer group %q of stream %q: %w; is the workload consuming it with that group?", b.cfg.Group, b.cfg.Stream, queuesplit.ErrNotFound)
}

func (b *Broker) hasGroup(ctx context.Context, key string) (bool, error) {
	groups, err := b.rdb.XInfoGroups(ctx, key).Result()
	if err != nil {
		return false, fmt.Errorf("reading the groups of stream %q: %w", key, err)
	}
	for _, g := range groups {
		if g.Name == b.cfg.Group {
			return true, nil
		}
	}
	return false, nil
}

// CreateQueue implements queuesplit.Broker.
func (b *Broker) CreateQueue(ctx context.Context, name string) (queuesplit.Env, error) {
	key := b.key(name)
	if err := b.rdb.XGroupCreateMkStream(ctx, key, b.cfg.Group, "0").Err(); err != nil {
		// The group exists already when the queue was created before
		// (Redis answers BUSYGROUP): look instead of reading the error.
		if ok, err2 := b.hasGroup(ctx, key); err2 != nil || !ok {
			return queuesplit.Env{}, fmt.Errorf("creating stream %q with group %q: %w", key, b.cfg.Group, err)
		}
	}
	return queuesplit.Env{Stream: key, Group: b.cfg.Group}, nil
}

// drainBatch is how many entries one drain script moves: a script blocks
// the server while it runs, so it stays short.
const drainBatch = 200

// Drain implements queuesplit.Broker.
func (b *Broker) Drain(ctx context.Context, name, into string) (int, error) {
	dest := b.cfg.Stream
	if into != "" {
		dest = b.key(into)
	}
	total := 0
	for {
		n, err := drainScript.Run(ctx, b.rdb, []string{b.key(name), dest}, b.cfg.Group, drainBatch).Int()
		if err != nil {
			return total, fmt.Errorf("draining stream %q into %q: %w", b.key(name), dest, err)
		}
		if n <= 0 {
			return total, nil
		}
		total += n
	}
}

// Discard implements queuesplit.Broker: one DEL of the temporary stream,
// which takes its group along.
func (b *Broker) Discard(ctx context.Context, name string) error {
	if err := b.rdb.Del(ctx, b.key(name)).Err(); err != nil {
		return fmt.Errorf("deleting stream %q: %w", b.key(name), err)
	}
	return nil
}

// Queues implements queuesplit.Broker.
func (b *Broker) Queues(ctx context.Context) ([]string, error) {
	prefix := b.prefix()
	var names []string
	iter := b.rdb.Scan(ctx, 0, globEscape(prefix)+"*", 1000).Iterator()
	for iter.Next(ctx) {
		names = append(names, strings.TrimPrefix(iter.Val(), prefix))
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("listing the temporary streams: %w", err)
	}
	return names, nil
}

func globEscape(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// Forget implements queuesplit.Broker: the router's consumer name leaves
// the group (XGROUP DELCONSUMER drops its pending entries, so it runs
// only once the router is settled).
func (b *Broker) Forget(ctx context.Context) error {
	if err := b.rdb.XGroupDelConsumer(ctx, b.cfg.Stream, b.cfg.Group, b.cfg.Consumer).Err(); err != nil {
		return fmt.Errorf("removing consumer %q from group %q: %w", b.cfg.Consumer, b.cfg.Group, err)
	}
	return nil
}

// Close implements queuesplit.Broker.
func (b *Broker) Close() error { return nil }

type source struct {
	b *Broker
	// pending: read the router's own pending entries before new ones
	// (at start, and after a failed delivery).
	pending bool
}

// Fetch implements queuesplit.Source.
func (s *source) Fetch(ctx context.Context, max int, wait time.Duration) ([]*queuesplit.Message, error) {
	if s.pending {
		msgs, err := s.read(ctx, "0", max, -1)
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		s.pending = false
	}
	return s.read(ctx, ">", max, wait)
}

func (s *source) read(ctx context.Context, from string, max int, block time.Duration) ([]*queuesplit.Message, error) {
	res, err := s.b.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: s.b.cfg.Group, Consumer: s.b.cfg.Consumer,
		Streams: []string{s.b.cfg.Stream, from}, Count: int64(max), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading stream %q: %w", s.b.cfg.Stream, err)
	}
	var msgs []*queuesplit.Message
	for _, st := range res {
		for _, x := range st.Messages {
			m := &queuesplit.Message{ID: x.ID, Headers: make(map[string][]string, len(x.Values))}
			for k, v := range x.Values {
				str, _ := v.(string)
				m.Headers[k] = []string{str}
				if k == s.b.cfg.BodyField {
					m.Body = []byte(str)
				}
			}
			msgs = append(msgs, m)
		}
	}
	return msgs, nil
}

// Deliver implements queuesplit.Source with deliverScript.
func (s *source) Deliver(ctx context.Context, batch []queuesplit.Delivery) error {
	keys := []string{s.b.cfg.Stream}
	index := map[string]int{}
	args := []any{s.b.cfg.Group}
	for _, d := range batch {
		to := append([]string{d.Owner}, d.Copies...)
		args = append(args, d.Msg.ID, len(to))
		for _, q := range to {
			i, ok := index[q]
			if !ok {
				keys = append(keys, s.b.key(q))
				i = len(keys)
				index[q] = i
			}
			args = append(args, i)
		}
	}
	if err := deliverScript.Run(ctx, s.b.rdb, keys, args...).Err(); err != nil {
		s.pending = true
		return fmt.Errorf("delivering %d entries of stream %q: %w", len(batch), s.b.cfg.Stream, err)
	}
	return nil
}

// Settled implements queuesplit.Source.
func (s *source) Settled(ctx context.Context) (bool, error) {
	p, err := s.b.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: s.b.cfg.Stream, Group: s.b.cfg.Group, Consumer: s.b.cfg.Consumer, Start: "-", End: "+", Count: 1,
	}).Result()
	if err != nil {
		return false, fmt.Errorf("reading the router's pending entries: %w", err)
	}
	if len(p) > 0 {
		s.pending = true
	}
	return len(p) == 0, nil
}

// Close implements queuesplit.Source.
func (s *source) Close() error { return nil }
