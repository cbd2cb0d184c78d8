package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

func connectNATS(c config) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect("nats://"+c.addr, nats.Timeout(c.opTimeout), nats.Name("queueapp "+c.who),
		nats.MaxReconnects(-1), nats.ReconnectWait(500*time.Millisecond))
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to NATS at %s: %w", c.addr, err)
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(c.opTimeout))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream at %s: %w", c.addr, err)
	}
	return nc, js, nil
}

func produceNATS(ctx context.Context, c config) error {
	nc, js, err := connectNATS(c)
	if err != nil {
		return err
	}
	defer nc.Close()
	if c.create {
		if err := ensureJetStream(ctx, c, js); err != nil {
			return err
		}
	}
	wait := c.pace(ctx)
	for n := c.start; n < c.start+c.count; n++ {
		if err := wait(); err != nil {
			return fmt.Errorf("stopped after %d messages: %w", n-c.start, err)
		}
		tenant, body := c.message(n)
		msg := &nats.Msg{Subject: c.subject, Header: nats.Header{"n": {strconv.Itoa(n)}, "tenant": {tenant}}, Data: body}
		octx, cancel := context.WithTimeout(ctx, c.opTimeout)
		_, err := js.PublishMsg(octx, msg)
		cancel()
		if err != nil {
			return fmt.Errorf("publishing message %d to %s at %s: %w", n, c.subject, c.addr, err)
		}
	}
	slog.Info("produced", "broker", "nats", "subject", c.subject, "first", c.start, "count", c.count)
	return nil
}

// ensureJetStream creates the stream (capturing the subject) and the
// durable pull consumer with explicit acknowledgement, unless they exist.
func ensureJetStream(ctx context.Context, c config, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, c.opTimeout)
	defer cancel()
	s, err := js.Stream(ctx, c.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: c.stream, Subjects: []string{c.subject}, Storage: jetstream.FileStorage})
	}
	if err != nil {
		return fmt.Errorf("the stream %s: %w", c.stream, err)
	}
	if c.group == "" {
		return nil
	}
	_, err = s.Consumer(ctx, c.group)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		_, err = s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: c.group, AckPolicy: jetstream.AckExplicitPolicy})
	}
	if err != nil {
		return fmt.Errorf("the durable %s of %s: %w", c.group, c.stream, err)
	}
	return nil
}

// consumeNATS pulls batches from the durable; a batch fetched is handled
// to its end even after SIGTERM.
func consumeNATS(ctx context.Context, c config, res *redis.Client) error {
	nc, js, err := connectNATS(c)
	if err != nil {
		return err
	}
	defer nc.Close()
	slog.Info("consuming", "broker", "nats", "addr", c.addr, "stream", c.stream, "durable", c.group, "subject", c.subject, "who", c.who)
	var cons jetstream.Consumer
	for ctx.Err() == nil {
		if cons == nil {
			lctx, cancel := context.WithTimeout(ctx, c.opTimeout)
			cons, err = js.Consumer(lctx, c.stream, c.group)
			cancel()
			if err != nil {
				cons = nil
				slog.Warn("the durable is not there; retrying", "stream", c.stream, "durable", c.group, "err", err)
				sleep(ctx, retryEvery)
				continue
			}
		}
		batch, err := cons.Fetch(c.batch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			slog.Warn("fetch failed; looking the durable up again", "err", err)
			cons = nil
			sleep(ctx, retryEvery)
			continue
		}
		for m := range batch.Messages() {
			if err := handleNATS(c, res, m); err != nil {
				return err
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			slog.Warn("fetch ended with an error; looking the durable up again", "err", err)
			cons = nil
		}
	}
	slog.Info("stopping", "reason", context.Cause(ctx))
	return nil
}

// handleNATS records the message, then acknowledges it and waits for the
// server to confirm, so an exit right after loses no acknowledgement.
func handleNATS(c config, res *redis.Client, m jetstream.Msg) error {
	n, err := strconv.Atoi(m.Headers().Get("n"))
	tenant := m.Headers().Get("tenant")
	if err != nil || tenant == "" {
		slog.Warn("malformed message", "subject", m.Subject(), "headers", m.Headers())
		n, tenant = 0, "malformed"
	}
	if err := c.record(res, n, tenant); err != nil {
		return fmt.Errorf("message on %s: %w", m.Subject(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opTimeout)
	defer cancel()
	if err := m.DoubleAck(ctx); err != nil {
		// Recorded already: the redelivery will show as a duplicate.
		slog.Warn("acknowledgement not confirmed", "n", n, "err", err)
	}
	return nil
}
