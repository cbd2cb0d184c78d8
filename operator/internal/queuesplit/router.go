package queuesplit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	qs "github.com/remocal/remocal/protocol/queuesplit"
)

// DeployedQueue is the name of the deployed consumer's own temporary
// queue; sessions' queues are named SessionQueue(id).
const DeployedQueue = "deployed"

// SessionQueue is the name of a session's temporary queue.
func SessionQueue(id string) string { return "session-" + id }

// Options tune a Router.
type Options struct {
	// Batch is the most messages fetched and delivered at once (100).
	Batch int
	// Wait is how long one fetch waits for a message (1 s).
	Wait time.Duration
	// MaxBodyBytes bounds the bodies JSON-path filters parse (1 MiB): a
	// larger body matches no body filter and is counted as Oversized.
	MaxBodyBytes int
	Logger       *slog.Logger
	// Delivered, if set, is called after each delivered batch with the
	// router's total (metrics; the benchmark's clock).
	Delivered func(total uint64)
}

func (o *Options) defaults() {
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.Wait <= 0 {
		o.Wait = time.Second
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Router splits one original queue between the deployed consumer and the
// sessions. Sessions may be added and removed while Run runs; a router
// started again on the same broker state (after a crash) resumes from it.
type Router struct {
	broker Broker
	opts   Options

	// routeMu is held while a batch is routed and delivered, so a removed
	// session's queue receives nothing once RemoveSession drains it.
	routeMu sync.Mutex
	mu      sync.Mutex // guards sessions
	// sessions in the order they split the queue: the oldest matching
	// steal takes a message.
	sessions []*session

	deployedStats Stats
	oversized     atomic.Uint64
	routed        atomic.Uint64
}

type session struct {
	id      string
	split   qs.Split
	matcher *qs.Matcher
	queue   string
	since   time.Time
	stats   Stats
}

// Stats count messages for one destination.
type Stats struct {
	Delivered atomic.Uint64
}

// New returns a router for the broker's original queue, creating the
// deployed consumer's own queue. The workload is then pointed at
// DeployedEnv (by the caller).
func New(ctx context.Context, b Broker, opts Options) (*Router, error) {
	opts.defaults()
	if _, err := b.CreateQueue(ctx, DeployedQueue); err != nil {
		return nil, fmt.Errorf("creating the deployed consumer's queue: %w", err)
	}
	return &Router{broker: b, opts: opts}, nil
}

// DeployedEnv is the env the deployed consumer reads while the queue is
// split.
func (r *Router) DeployedEnv(ctx context.Context) (Env, error) {
	return r.broker.CreateQueue(ctx, DeployedQueue)
}

// ConflictError is returned by AddSession when a steal conflicts with one
// a session already holds (protocol/queuesplit.Conflicts).
type ConflictError struct {
	Holder       string
	HolderFilter *qs.Filter
	Since        time.Time
}

func (e *ConflictError) Error() string {
	hint := "steal with a filter that does not overlap theirs (a header value only your messages carry), or use mirror mode"
	if e.HolderFilter == nil {
		hint = "ask them to stop, use mirror mode, or wait for their session to end"
	}
	return fmt.Sprintf("the queue is already stolen with %s by session %s since %s; %s",
		e.HolderFilter, e.Holder, e.Since.UTC().Format(time.RFC3339), hint)
}

var sessionIDRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

// AddSession starts splitting for session id and returns the env its
// local program reads its queue with.
func (r *Router) AddSession(ctx context.Context, id string, split qs.Split) (Env, error) {
	if !sessionIDRE.MatchString(id) {
		return Env{}, fmt.Errorf("session id %q: expected 1 to 40 lower-case letters, digits and '-'", id)
	}
	if err := split.Validate(); err != nil {
		return Env{}, fmt.Errorf("split of session %s: %w", id, err)
	}
	m, err := split.Filter.Compile()
	if err != nil {
		return Env{}, err
	}
	r.mu.Lock()
	for _, s := range r.sessions {
		if s.id == id {
			r.mu.Unlock()
			return Env{}, fmt.Errorf("session %s already splits this queue; remove it first", id)
		}
		if qs.Conflicts(s.split, split) {
			r.mu.Unlock()
			return Env{}, &ConflictError{Holder: s.id, HolderFilter: s.split.Filter, Since: s.since}
		}
	}
	r.mu.Unlock()
	env, err := r.broker.CreateQueue(ctx, SessionQueue(id))
	if err != nil {
		return Env{}, fmt.Errorf("creating the queue of session %s: %w", id, err)
	}
	s := &session{id: id, split: split.Clone(), matcher: m, queue: SessionQueue(id), since: time.Now()}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Checked again: another AddSession may have won meanwhile.
	for _, o := range r.sessions {
		if o.id == id || qs.Conflicts(o.split, split) {
			return Env{}, &ConflictError{Holder: o.id, HolderFilter: o.split.Filter, Since: o.since}
		}
	}
	r.sessions = append(r.sessions, s)
	return env, nil
}

// RemoveSession stops splitting for session id and moves what its queue
// still holds to the deployed consumer's queue (a steal), or drops it (a
// mirror's copies). The session's program must have stopped consuming. It
// returns how many messages moved.
func (r *Router) RemoveSession(ctx context.Context, id string) (int, error) {
	r.mu.Lock()
	i := slices.IndexFunc(r.sessions, func(s *session) bool { return s.id == id })
	mirror := false
	if i >= 0 {
		mirror = r.sessions[i].split.EffectiveMode() == qs.ModeMirror
		r.sessions = slices.Delete(r.sessions, i, i+1)
	}
	r.mu.Unlock()
	// Hold off routing while the queue drains: a batch routed with the
	// old table is delivered before the lock is ours, and nothing
	// reaches the queue while it is drained. A mirror's queue holds
	// copies whose originals went to their owners: they are dropped, or
	// the deployed consumer would get them twice.
	r.routeMu.Lock()
	var n int
	var err error
	if mirror {
		err = r.broker.Discard(ctx, SessionQueue(id))
	} else {
		n, err = r.broker.Drain(ctx, SessionQueue(id), DeployedQueue)
	}
	r.routeMu.Unlock()
	if err != nil {
		return n, fmt.Errorf("moving the messages of session %s back to the deployed consumer: %w", id, err)
	}
	return n, nil
}

// SessionStats returns how many messages were delivered to each session
// and to the deployed consumer ("" key) since this router started.
func (r *Router) SessionStats() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]uint64{"": r.deployedStats.Delivered.Load()}
	for _, s := range r.sessions {
		out[s.id] = s.stats.Delivered.Load()
	}
	return out
}

// Run routes messages until ctx ends. Cancelling ctx may interrupt a
// delivery anywhere, like a crash: nothing is lost or duplicated, and a
// router started again (or Settle) finishes it. Errors of the broker are
// logged and retried with backoff; Run returns nil when ctx ends, or an
// error only when the source cannot be opened.
func (r *Router) Run(ctx context.Context) error {
	src, err := r.broker.Source(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("opening the original queue: %w", err)
	}
	defer src.Close()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		if err := r.step(ctx, src); err != nil {
			if ctx.Err() != nil {
				break
			}
			r.opts.Logger.Warn("queue split: routing failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
	}
	return nil
}

// step fetches one batch and delivers it.
func (r *Router) step(ctx context.Context, src Source) error {
	msgs, err := src.Fetch(ctx, r.opts.Batch, r.opts.Wait)
	if err != nil || len(msgs) == 0 {
		return err
	}
	r.routeMu.Lock()
	defer r.routeMu.Unlock()
	batch, counters := r.route(msgs)
	if err := src.Deliver(ctx, batch); err != nil {
		return err
	}
	for _, c := range counters {
		c.Delivered.Add(1)
	}
	total := r.routed.Add(uint64(len(batch)))
	if r.opts.Delivered != nil {
		r.opts.Delivered(total)
	}
	return nil
}

// Routed is how many messages of the original queue this router
// delivered.
func (r *Router) Routed() uint64 { return r.routed.Load() }

// Oversized is how many messages had a body larger than MaxBodyBytes.
func (r *Router) Oversized() uint64 { return r.oversized.Load() }

// route decides each message's queues: every matching mirror gets a
// copy; the oldest matching steal takes it, else the deployed consumer.
func (r *Router) route(msgs []*Message) ([]Delivery, []*Stats) {
	r.mu.Lock()
	sessions := slices.Clone(r.sessions)
	r.mu.Unlock()
	batch := make([]Delivery, 0, len(msgs))
	var counters []*Stats
	for _, m := range msgs {
		view := qs.Message{Headers: m.Headers, Body: m.Body}
		big := len(m.Body) > r.opts.MaxBodyBytes
		if big {
			view.Body = nil
			r.oversized.Add(1)
		}
		d := Delivery{Msg: m}
		for _, s := range sessions {
			steal := s.split.EffectiveMode() == qs.ModeSteal
			if steal && d.Owner != "" || !s.matcher.Match(&view) {
				continue
			}
			if steal {
				d.Owner = s.queue
			} else {
				d.Copies = append(d.Copies, s.queue)
			}
			counters = append(counters, &s.stats)
		}
		if d.Owner == "" {
			d.Owner = DeployedQueue
			counters = append(counters, &r.deployedStats)
		}
		batch = append(batch, d)
	}
	return batch, counters
}

// Settle delivers what the router received and did not acknowledge (after
// a crash) until it holds nothing, so that the workload can go back to the
// original queue without receiving a message the router already
// delivered. Run must have returned; remove the sessions first, so what is
// settled goes to the deployed consumer's queue. timeout bounds the wait
// (JetStream redelivers after the consumer's AckWait).
func (r *Router) Settle(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	src, err := r.broker.Source(ctx)
	if err != nil {
		return fmt.Errorf("opening the original queue: %w", err)
	}
	defer src.Close()
	for {
		ok, err := src.Settled(ctx)
		if err != nil {
			return fmt.Errorf("settling the router's messages: %w", err)
		}
		if ok {
			return r.broker.Forget(ctx)
		}
		if err := r.step(ctx, src); err != nil {
			return fmt.Errorf("settling the router's messages: %w", err)
		}
	}
}

// Drain ends the split once the workload reads the original queue again:
// the deployed consumer's queue (and any session's left) go back into the
// original, and every temporary queue is deleted. It returns how many
// messages moved.
func (r *Router) Drain(ctx context.Context) (int, error) {
	r.mu.Lock()
	left := len(r.sessions)
	r.mu.Unlock()
	if left > 0 {
		return 0, errors.New("sessions still split the queue; remove them before draining")
	}
	names, err := r.broker.Queues(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, name := range names {
		n, err := r.broker.Drain(ctx, name, "")
		total += n
		if err != nil {
			return total, fmt.Errorf("moving the messages of queue %s back: %w", name, err)
		}
	}
	return total, nil
}
