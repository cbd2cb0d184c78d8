package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// retryEvery is how long the consumer waits after a failed read (a stream
// or group that does not exist yet, a broker restarting) before trying
// again.
const retryEvery = time.Second

func produceRedis(ctx context.Context, c config) error {
	rdb := redisClient(c.addr, c.opTimeout)
	defer rdb.Close()
	if c.create {
		if err := ensureRedisGroup(ctx, c, rdb); err != nil {
			return err
		}
	}
	wait := c.pace(ctx)
	for n := c.start; n < c.start+c.count; n++ {
		if err := wait(); err != nil {
			return fmt.Errorf("stopped after %d messages: %w", n-c.start, err)
		}
		tenant, body := c.message(n)
		octx, cancel := context.WithTimeout(ctx, c.opTimeout)
		err := rdb.XAdd(octx, &redis.XAddArgs{Stream: c.stream, Values: []any{"n", strconv.Itoa(n), "tenant", tenant, "body", body}}).Err()
		cancel()
		if err != nil {
			return fmt.Errorf("XADD message %d to %s at %s: %w", n, c.stream, c.addr, err)
		}
	}
	slog.Info("produced", "broker", "redis", "stream", c.stream, "first", c.start, "count", c.count)
	return nil
}

// ensureRedisGroup creates the stream and its group (reading from the
// stream's start, so no message produced before a consumer came is
// skipped) unless they exist.
func ensureRedisGroup(ctx context.Context, c config, rdb *redis.Client) error {
	ctx, cancel := context.WithTimeout(ctx, c.opTimeout)
	defer cancel()
	exists, err := rdb.Exists(ctx, c.stream).Result()
	if err != nil {
		return fmt.Errorf("EXISTS %s at %s: %w", c.stream, c.addr, err)
	}
	if exists == 1 {
		groups, err := rdb.XInfoGroups(ctx, c.stream).Result()
		if err != nil {
			return fmt.Errorf("XINFO GROUPS %s: %w (is the key a stream?)", c.stream, err)
		}
		if slices.ContainsFunc(groups, func(g redis.XInfoGroup) bool { return g.Name == c.group }) {
			return nil
		}
	}
	if err := rdb.XGroupCreateMkStream(ctx, c.stream, c.group, "0").Err(); err != nil {
		return fmt.Errorf("XGROUP CREATE %s %s: %w", c.stream, c.group, err)
	}
	return nil
}

// consumeRedis reads the group as consumer c.consumer: first what it left
// pending in an earlier life (a restarted container keeps its host name),
// then new entries, and now and then entries other consumers of the group
// left pending for longer than -claim-idle.
func consumeRedis(ctx context.Context, c config, res *redis.Client) error {
	rdb := redisClient(c.addr, c.opTimeout)
	defer rdb.Close()
	slog.Info("consuming", "broker", "redis", "addr", c.addr, "stream", c.stream, "group", c.group, "consumer", c.consumer, "who", c.who)
	id := "0" // own pending entries first
	lastClaim := time.Now()
	for ctx.Err() == nil {
		// Not ctx: a read cut short could leave entries the server handed
		// over in this consumer's pending list unseen. BLOCK bounds it.
		rctx, cancel := context.WithTimeout(context.Background(), c.opTimeout+2*time.Second)
		streams, err := rdb.XReadGroup(rctx, &redis.XReadGroupArgs{
			Group: c.group, Consumer: c.consumer, Streams: []string{c.stream, id}, Count: int64(c.batch), Block: time.Second,
		}).Result()
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			slog.Warn("XREADGROUP failed; retrying", "stream", c.stream, "group", c.group, "err", err)
			sleep(ctx, retryEvery)
			continue
		}
		var msgs []redis.XMessage
		for _, s := range streams {
			msgs = append(msgs, s.Messages...)
		}
		if id == "0" && len(msgs) == 0 {
			id = ">"
			continue
		}
		if err := handleRedis(c, rdb, res, msgs); err != nil {
			return err
		}
		if c.claimIdle > 0 && len(msgs) == 0 && time.Since(lastClaim) > c.claimIdle/2 {
			lastClaim = time.Now()
			if err := claimRedis(c, rdb, res); err != nil {
				return err
			}
		}
	}
	slog.Info("stopping", "reason", context.Cause(ctx))
	return nil
}

// claimRedis takes over entries of the group idle longer than -claim-idle
// (their consumer died holding them) and handles them.
func claimRedis(c config, rdb *redis.Client, res *redis.Client) error {
	start := "0-0"
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), c.opTimeout)
		msgs, next, err := rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: c.stream, Group: c.group, Consumer: c.consumer, MinIdle: c.claimIdle, Start: start, Count: int64(c.batch),
		}).Result()
		cancel()
		if err != nil {
			slog.Warn("XAUTOCLAIM failed", "stream", c.stream, "err", err)
			return nil
		}
		if len(msgs) > 0 {
			slog.Info("claimed entries left pending", "count", len(msgs))
		}
		if err := handleRedis(c, rdb, res, msgs); err != nil {
			return err
		}
		if next == "0-0" {
			return nil
		}
		start = next
	}
	return nil
}

// handleRedis records and acknowledges each message, whatever the
// signals: these are in hand.
func handleRedis(c config, rdb *redis.Client, res *redis.Client, msgs []redis.XMessage) error {
	for _, m := range msgs {
		// An entry deleted while pending comes back with no fields:
		// nothing to record.
		if len(m.Values) > 0 {
			n, tenant := redisFields(m)
			if err := c.record(res, n, tenant); err != nil {
				return fmt.Errorf("entry %s of %s: %w", m.ID, c.stream, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opTimeout)
		err := rdb.XAck(ctx, c.stream, c.group, m.ID).Err()
		cancel()
		if err != nil {
			return fmt.Errorf("XACK %s %s %s (recorded, so a redelivery shows as a duplicate): %w", c.stream, c.group, m.ID, err)
		}
	}
	return nil
}

// redisFields reads n and tenant; a message without them is recorded as
// number 0, tenant "malformed", which no test produces.
func redisFields(m redis.XMessage) (int, string) {
	ns, _ := m.Values["n"].(string)
	tenant, _ := m.Values["tenant"].(string)
	n, err := strconv.Atoi(ns)
	if err != nil || tenant == "" {
		slog.Warn("malformed message", "id", m.ID, "fields", m.Values)
		return 0, "malformed"
	}
	return n, tenant
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
