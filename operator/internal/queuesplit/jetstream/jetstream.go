// Package jetstream splits a NATS JetStream stream read by a durable pull
// consumer (queuesplit.Broker). The router pulls from the deployed
// consumer's own durable, publishes each message to the temporary streams
// with a Nats-Msg-Id derived from its stream sequence, so that the
// streams' duplicate windows drop a second copy, and acknowledges it once
// every publish is acknowledged (stored).
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/remocal/remocal/operator/internal/queuesplit"
)

// Config names the original stream and how it is consumed.
type Config struct {
	// Stream is the original stream, Durable the deployed consumer's
	// durable pull consumer on it.
	Stream  string
	Durable string
	// Subject is the value of the workload's subject variable, if it has
	// one; temporary queues' envs give it under their prefix.
	Subject string
	// DuplicateWindow of the temporary streams (2 h when zero): a message
	// the router published and could not acknowledge (a crash) is
	// redelivered after the consumer's AckWait and dropped as a duplicate
	// if it comes back within this window. It bounds the router's
	// downtime for exactly-once (docs/queues.md).
	DuplicateWindow time.Duration
}

// Broker is a NATS server with JetStream holding the original stream.
type Broker struct {
	js  jetstream.JetStream
	cfg Config
}

var _ queuesplit.Broker = (*Broker)(nil)

// New returns the broker for cfg over nc; Close does not close nc.
func New(nc *nats.Conn, cfg Config) (*Broker, error) {
	if cfg.Stream == "" || cfg.Durable == "" {
		return nil, errors.New("jetstream: the stream and the durable consumer are required")
	}
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = 2 * time.Hour
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Broker{js: js, cfg: cfg}, nil
}

// Original implements queuesplit.Broker.
func (b *Broker) Original() queuesplit.Env {
	return queuesplit.Env{Stream: b.cfg.Stream, Group: b.cfg.Durable, Subject: b.cfg.Subject}
}

func (b *Broker) streamName(queue string) string { return b.cfg.Stream + "_remocal_" + queue }

// prefix is the subject prefix of a temporary queue: its messages keep
// their original subject after it, so a drain can restore it.
func (b *Broker) prefix(queue string) string { return "remocal." + b.cfg.Stream + "." + queue }

func (b *Broker) original(ctx context.Context) (jetstream.Stream, *jetstream.ConsumerInfo, error) {
	st, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			err = fmt.Errorf("%w (%w)", queuesplit.ErrNotFound, err)
		}
		return nil, nil, fmt.Errorf("stream %q: %w", b.cfg.Stream, err)
	}
	c, err := st.Consumer(ctx, b.cfg.Durable)
	if err != nil {
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			err = fmt.Errorf("%w (%w); is the workload consuming it with that durable?", queuesplit.ErrNotFound, err)
		}
		return nil, nil, fmt.Errorf("consumer %q of stream %q: %w", b.cfg.Durable, b.cfg.Stream, err)
	}
	return st, c.CachedInfo(), nil
}

// Source implements queuesplit.Broker.
func (b *Broker) Source(ctx context.Context) (queuesplit.Source, error) {
	st, info, err := b.original(ctx)
	if err != nil {
		return nil, err
	}
	if info.Config.AckPolicy != jetstream.AckExplicitPolicy {
		return nil, fmt.Errorf("consumer %q of stream %q acknowledges with %s; splitting needs explicit acknowledgement", b.cfg.Durable, b.cfg.Stream, info.Config.AckPolicy)
	}
	c, err := st.Consumer(ctx, b.cfg.Durable)
	if err != nil {
		return nil, fmt.Errorf("consumer %q of stream %q: %w", b.cfg.Durable, b.cfg.Stream, err)
	}
	return &source{b: b, c: c}, nil
}

// CreateQueue implements queuesplit.Broker: a work-queue stream (a
// message leaves it when its consumer acknowledges it) with a durable of
// the original's name and settings.
func (b *Broker) CreateQueue(ctx context.Context, name string) (queuesplit.Env, error) {
	st, info, err := b.original(ctx)
	if err != nil {
		return queuesplit.Env{}, err
	}
	prefix := b.prefix(name)
	scfg := jetstream.StreamConfig{
		Name: b.streamName(name), Subjects: []string{prefix + ".>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
		Replicas: st.CachedInfo().Config.Replicas, Duplicates: b.cfg.DuplicateWindow,
		Description: "remocal queue split of stream " + b.cfg.Stream + " for " + name,
	}
	if _, err := b.js.CreateStream(ctx, scfg); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return queuesplit.Env{}, fmt.Errorf("creating stream %q: %w", scfg.Name, err)
	}
	ccfg := info.Config
	ccfg.DeliverPolicy, ccfg.OptStartSeq, ccfg.OptStartTime = jetstream.DeliverAllPolicy, 0, nil
	ccfg.FilterSubject = prefix + ".>"
	if f := info.Config.FilterSubject; f != "" {
		ccfg.FilterSubject = prefix + "." + f
	}
	ccfg.FilterSubjects = nil
	if _, err := b.js.CreateOrUpdateConsumer(ctx, scfg.Name, ccfg); err != nil {
		return queuesplit.Env{}, fmt.Errorf("creating consumer %q on stream %q: %w", ccfg.Durable, scfg.Name, err)
	}
	env := queuesplit.Env{Stream: scfg.Name, Group: b.cfg.Durable, Subject: prefix + ".>"}
	if b.cfg.Subject != "" {
		env.Subject = prefix + "." + b.cfg.Subject
	}
	return env, nil
}

// Drain implements queuesplit.Broker. What a work-queue stream still
// holds is exactly what its consumer has not acknowledged; each message
// is published to its destination with a Nats-Msg-Id naming its place in
// the temporary stream, then deleted there, so a drain run again after an
// interruption is dropped as a duplicate by the destination.
func (b *Broker) Drain(ctx context.Context, name, into string) (int, error) {
	st, err := b.js.Stream(ctx, b.streamName(name))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stream %q: %w", b.streamName(name), err)
	}
	state := st.CachedInfo().State
	prefix := b.prefix(name) + "."
	moved := 0
	for seq := state.FirstSeq; state.Msgs > 0 && seq <= state.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return moved, fmt.Errorf("reading message %d of stream %q: %w", seq, b.streamName(name), err)
		}
		subject, stream := strings.TrimPrefix(m.Subject, prefix), b.cfg.Stream
		if into != "" {
			subject, stream = b.prefix(into)+"."+subject, b.streamName(into)
		}
		hdr := cloneHeader(m.Header)
		id := "remocal-drain:" + b.streamName(name) + ":" + strconv.FormatUint(seq, 10)
		if _, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: hdr, Data: m.Data},
			jetstream.WithMsgID(id), jetstream.WithExpectStream(stream)); err != nil {
			return moved, fmt.Errorf("moving message %d of stream %q to %q: %w", seq, b.streamName(name), stream, err)
		}
		if err := st.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return moved, fmt.Errorf("deleting message %d of stream %q: %w", seq, b.streamName(name), err)
		}
		moved++
	}
	if err := b.js.DeleteStream(ctx, b.streamName(name)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return moved, fmt.Errorf("deleting stream %q: %w", b.streamName(name), err)
	}
	return moved, nil
}

func cloneHeader(h nats.Header) nats.Header {
	out := nats.Header{}
	for k, v := range h {
		if k != jetstream.MsgIDHeader {
			out[k] = append([]string(nil), v...)
		}
	}
	return out
}

// Queues implements queuesplit.Broker.
func (b *Broker) Queues(ctx context.Context) ([]string, error) {
	prefix := b.streamName("")
	names := b.js.StreamNames(ctx)
	var out []string
	for n := range names.Name() {
		if strings.HasPrefix(n, prefix) {
			out = append(out, strings.TrimPrefix(n, prefix))
		}
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("listing streams: %w", err)
	}
	return out, nil
}

// Forget implements queuesplit.Broker: the router leaves nothing in the
// durable.
func (b *Broker) Forget(context.Context) error { return nil }

// Close implements queuesplit.Broker.
func (b *Broker) Close() error { return nil }

type source struct {
	b *Broker
	c jetstream.Consumer
}

// Fetch implements queuesplit.Source.
func (s *source) Fetch(ctx context.Context, max int, wait time.Duration) ([]*queuesplit.Message, error) {
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	batch, err := s.c.Fetch(max, jetstream.FetchContext(fctx))
	if err != nil {
		return nil, fmt.Errorf("pulling from consumer %q: %w", s.b.cfg.Durable, err)
	}
	var msgs []*queuesplit.Message
	for m := range batch.Messages() {
		meta, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("message without JetStream metadata: %w", err)
		}
		msgs = append(msgs, &queuesplit.Message{
			ID: strconv.FormatUint(meta.Sequence.Stream, 10), Headers: m.Headers(), Body: m.Data(), Handle: m,
		})
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return msgs, fmt.Errorf("pulling from consumer %q: %w", s.b.cfg.Durable, err)
	}
	return msgs, nil
}

// Deliver implements queuesplit.Source: every publish of the batch is
// acknowledged by its stream before any source message is acknowledged.
func (s *source) Deliver(ctx context.Context, batch []queuesplit.Delivery) error {
	var futures []jetstream.PubAckFuture
	for _, d := range batch {
		m := d.Msg.Handle.(jetstream.Msg)
		id := s.b.cfg.Stream + ":" + d.Msg.ID
		for _, q := range d.To {
			f, err := s.b.js.PublishMsgAsync(&nats.Msg{
				Subject: s.b.prefix(q) + "." + m.Subject(), Header: cloneHeader(m.Headers()), Data: m.Data(),
			}, jetstream.WithMsgID(id), jetstream.WithExpectStream(s.b.streamName(q)))
			if err != nil {
				return fmt.Errorf("publishing message %s to %s: %w", d.Msg.ID, q, err)
			}
			futures = append(futures, f)
		}
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publishing to %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Acknowledgements travel in order on one connection: confirming the
	// last one confirms that the server has processed them all.
	for i, d := range batch {
		m := d.Msg.Handle.(jetstream.Msg)
		if i < len(batch)-1 {
			if err := m.Ack(); err != nil {
				return fmt.Errorf("acknowledging message %s: %w", d.Msg.ID, err)
			}
			continue
		}
		if err := m.DoubleAck(ctx); err != nil {
			return fmt.Errorf("acknowledging message %s: %w", d.Msg.ID, err)
		}
	}
	return nil
}

// Settled implements queuesplit.Source: no message of the durable waits
// for an acknowledgement (after the rollout the router is its only
// reader).
func (s *source) Settled(ctx context.Context) (bool, error) {
	info, err := s.c.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("consumer %q: %w", s.b.cfg.Durable, err)
	}
	return info.NumAckPending == 0, nil
}

// Close implements queuesplit.Source.
func (s *source) Close() error { return nil }
