// Package jetstream splits a NATS JetStream stream read by a durable pull
// consumer (queuesplit.Broker). The temporary queues are subjects of one
// work-queue stream, the split stream, each read by a durable of its own.
// The router pulls from the deployed consumer's own durable and publishes
// each message's owner copy with the Nats-Msg-Id "<stream>:<sequence>"
// (and each mirror copy with an ID naming its session): the split
// stream's duplicate window drops a second owner copy whichever queue it
// is routed to, so a message the router published and could not
// acknowledge before a crash is stored once even if the sessions changed
// before it came back. It acknowledges the original only once every
// publish is acknowledged (stored).
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
	// DuplicateWindow of the split stream (2 h when zero): a message
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

// splitStream is the stream holding every temporary queue.
func (b *Broker) splitStream() string { return b.cfg.Stream + "_remocal" }

// durable is the durable consumer reading queue in the split stream.
func (b *Broker) durable(queue string) string { return b.cfg.Durable + "-" + queue }

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

// CreateQueue implements queuesplit.Broker: the split stream (a
// work-queue stream: a message leaves it when its consumer acknowledges
// it) and a durable with the original's settings reading the queue's
// subjects.
func (b *Broker) CreateQueue(ctx context.Context, name string) (queuesplit.Env, error) {
	st, info, err := b.original(ctx)
	if err != nil {
		return queuesplit.Env{}, err
	}
	scfg := jetstream.StreamConfig{
		Name: b.splitStream(), Subjects: []string{"remocal." + b.cfg.Stream + ".>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
		Replicas: st.CachedInfo().Config.Replicas, Duplicates: b.cfg.DuplicateWindow,
		Description: "remocal: the split of stream " + b.cfg.Stream,
	}
	if _, err := b.js.CreateStream(ctx, scfg); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return queuesplit.Env{}, fmt.Errorf("creating stream %q: %w", scfg.Name, err)
	}
	prefix := b.prefix(name)
	ccfg := info.Config
	ccfg.Name, ccfg.Durable = b.durable(name), b.durable(name)
	ccfg.DeliverPolicy, ccfg.OptStartSeq, ccfg.OptStartTime = jetstream.DeliverAllPolicy, 0, nil
	ccfg.FilterSubject = prefix + ".>"
	if f := info.Config.FilterSubject; f != "" {
		ccfg.FilterSubject = prefix + "." + f
	}
	ccfg.FilterSubjects = nil
	if _, err := b.js.CreateOrUpdateConsumer(ctx, scfg.Name, ccfg); err != nil {
		return queuesplit.Env{}, fmt.Errorf("creating consumer %q on stream %q: %w", ccfg.Durable, scfg.Name, err)
	}
	env := queuesplit.Env{Stream: scfg.Name, Group: ccfg.Durable, Subject: prefix + ".>"}
	if b.cfg.Subject != "" {
		env.Subject = prefix + "." + b.cfg.Subject
	}
	return env, nil
}

// Drain implements queuesplit.Broker. What the work-queue stream holds on
// the queue's subjects is exactly what its consumer has not acknowledged;
// each message is published to its destination with a Nats-Msg-Id naming
// its place in the split stream, then deleted there, so a drain run again
// after an interruption is dropped as a duplicate by the destination.
// The queue's durable goes last, and the split stream with the last one.
func (b *Broker) Drain(ctx context.Context, name, into string) (int, error) {
	st, err := b.js.Stream(ctx, b.splitStream())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stream %q: %w", b.splitStream(), err)
	}
	prefix := b.prefix(name) + "."
	moved := 0
	for seq := st.CachedInfo().State.FirstSeq; ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(prefix+">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return moved, fmt.Errorf("reading stream %q from %d: %w", b.splitStream(), seq, err)
		}
		if err := b.move(ctx, st, m, strings.TrimPrefix(m.Subject, prefix), into); err != nil {
			return moved, err
		}
		moved++
		seq = m.Sequence + 1
	}
	if err := st.DeleteConsumer(ctx, b.durable(name)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return moved, fmt.Errorf("deleting consumer %q: %w", b.durable(name), err)
	}
	left, err := b.Queues(ctx)
	if err != nil || len(left) > 0 {
		return moved, err
	}
	if err := b.js.DeleteStream(ctx, b.splitStream()); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return moved, fmt.Errorf("deleting stream %q: %w", b.splitStream(), err)
	}
	return moved, nil
}

// Discard implements queuesplit.Broker: the queue's messages are purged
// from the split stream, then its durable (and the split stream with the
// last one) goes as after a drain.
func (b *Broker) Discard(ctx context.Context, name string) error {
	st, err := b.js.Stream(ctx, b.splitStream())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %q: %w", b.splitStream(), err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(b.prefix(name)+".>")); err != nil {
		return fmt.Errorf("purging queue %q of stream %q: %w", name, b.splitStream(), err)
	}
	_, err = b.Drain(ctx, name, "")
	return err
}

// move publishes m (whose original subject is subject) to queue into, or
// to the original stream when into is "", and deletes it.
func (b *Broker) move(ctx context.Context, st jetstream.Stream, m *jetstream.RawStreamMsg, subject, into string) error {
	stream := b.cfg.Stream
	if into != "" {
		subject, stream = b.prefix(into)+"."+subject, b.splitStream()
	}
	id := "remocal-drain:" + b.splitStream() + ":" + strconv.FormatUint(m.Sequence, 10)
	if _, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: cloneHeader(m.Header), Data: m.Data},
		jetstream.WithMsgID(id), jetstream.WithExpectStream(stream)); err != nil {
		return fmt.Errorf("moving message %d of stream %q to %q: %w", m.Sequence, b.splitStream(), stream, err)
	}
	if err := st.DeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("deleting message %d of stream %q: %w", m.Sequence, b.splitStream(), err)
	}
	return nil
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

// Queues implements queuesplit.Broker: one durable per queue.
func (b *Broker) Queues(ctx context.Context) ([]string, error) {
	st, err := b.js.Stream(ctx, b.splitStream())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %q: %w", b.splitStream(), err)
	}
	prefix := b.durable("")
	names := st.ConsumerNames(ctx)
	var out []string
	for n := range names.Name() {
		if strings.HasPrefix(n, prefix) {
			out = append(out, strings.TrimPrefix(n, prefix))
		}
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("listing the consumers of stream %q: %w", b.splitStream(), err)
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

// Fetch implements queuesplit.Source. A pull request for max messages
// waits until it has them all or expires, which would hold a lone message
// for the whole wait: so it takes what is there without waiting, and
// only when nothing is waits for one message.
func (s *source) Fetch(ctx context.Context, max int, wait time.Duration) ([]*queuesplit.Message, error) {
	batch, err := s.c.FetchNoWait(max)
	if err != nil {
		return nil, fmt.Errorf("pulling from consumer %q: %w", s.b.cfg.Durable, err)
	}
	msgs, err := s.collect(ctx, batch)
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if batch, err = s.c.Fetch(1, jetstream.FetchContext(fctx)); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("pulling from consumer %q: %w", s.b.cfg.Durable, err)
	}
	return s.collect(ctx, batch)
}

func (s *source) collect(ctx context.Context, batch jetstream.MessageBatch) ([]*queuesplit.Message, error) {
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
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return msgs, fmt.Errorf("pulling from consumer %q: %w", s.b.cfg.Durable, err)
	}
	return msgs, nil
}

// Deliver implements queuesplit.Source: every publish of the batch is
// acknowledged by the split stream before any source message is
// acknowledged.
func (s *source) Deliver(ctx context.Context, batch []queuesplit.Delivery) error {
	if err := s.publish(ctx, batch); err != nil {
		return err
	}
	return s.ack(ctx, batch)
}

func (s *source) publish(ctx context.Context, batch []queuesplit.Delivery) error {
	var futures []jetstream.PubAckFuture
	send := func(d queuesplit.Delivery, queue, id string) error {
		m := d.Msg.Handle.(jetstream.Msg)
		f, err := s.b.js.PublishMsgAsync(&nats.Msg{
			Subject: s.b.prefix(queue) + "." + m.Subject(), Header: cloneHeader(m.Headers()), Data: m.Data(),
		}, jetstream.WithMsgID(id), jetstream.WithExpectStream(s.b.splitStream()))
		if err != nil {
			return fmt.Errorf("publishing message %s to %s: %w", d.Msg.ID, queue, err)
		}
		futures = append(futures, f)
		return nil
	}
	for _, d := range batch {
		id := s.b.cfg.Stream + ":" + d.Msg.ID
		if err := send(d, d.Owner, id); err != nil {
			return err
		}
		for _, q := range d.Copies {
			if err := send(d, q, id+":copy:"+q); err != nil {
				return err
			}
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
	return nil
}

// ack acknowledges the batch's messages. Acknowledgements travel in order
// on one connection: confirming the last one confirms that the server has
// processed them all.
func (s *source) ack(ctx context.Context, batch []queuesplit.Delivery) error {
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
