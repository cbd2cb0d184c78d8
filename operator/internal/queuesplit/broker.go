// Package queuesplit routes the messages of a shared queue between the
// deployed consumer and the sessions that split it (issue 16,
// docs/queues.md): a Router reads the original queue as a member of the
// deployed consumer's own group, evaluates every session's filter and
// writes each message to the temporary queues of the sessions it belongs
// to, or to the deployed consumer's own queue, acknowledging it only once
// the broker has stored it there.
//
// Brokers implement Broker (redisstream, jetstream); the operator's wiring
// (patching the workload, leases, the CRD) is not here.
package queuesplit

import (
	"context"
	"errors"
	"time"
)

// Message is one message read from the original queue.
type Message struct {
	// ID is the broker's identity of the message in the original queue
	// (a Redis entry ID, a JetStream stream sequence).
	ID string
	// Headers are the message's headers or attributes (Redis entry
	// fields, NATS headers); Body is what JSON-path filters read.
	Headers map[string][]string
	Body    []byte
	// Handle is the broker's own state for acknowledging the message.
	Handle any
}

// Delivery is a message and the queues it goes to.
type Delivery struct {
	Msg *Message
	// Owner is the one queue the message belongs to: the stealing
	// session's, or the deployed consumer's. Copies are the queues of the
	// mirroring sessions that get a copy.
	Owner  string
	Copies []string
}

// Env is what a consumer is given to read a queue: the values of the
// workload's environment variables (protocol/queuesplit.QueueEnv).
type Env struct {
	Stream  string `json:"stream"`
	Group   string `json:"group"`
	Subject string `json:"subject,omitempty"`
}

// Source is the original queue as the router reads it.
type Source interface {
	// Fetch returns up to max messages, waiting at most wait for the
	// first (none is not an error). Messages the router received earlier
	// and did not acknowledge, in this run or a previous one, come back
	// (Redis: at once, first; JetStream: after the consumer's AckWait).
	Fetch(ctx context.Context, max int, wait time.Duration) ([]*Message, error)
	// Deliver stores each message in every queue it names and then
	// acknowledges it on the source, in order. Whatever happens (an error,
	// ctx cancelled, the process killed), a message is either stored in
	// all its queues and acknowledged, or it will be fetched again, and
	// delivering it again stores it nowhere twice.
	Deliver(ctx context.Context, batch []Delivery) error
	// Settled reports whether the router holds no message it received
	// and did not acknowledge.
	Settled(ctx context.Context) (bool, error)
	Close() error
}

// Broker is one broker's original queue and the temporary queues of a
// split.
type Broker interface {
	// Original is the env of the original queue, as the workload had it.
	Original() Env
	// Source opens the original queue for the router, as a member of the
	// deployed consumer's own group (Redis consumer group, JetStream
	// durable pull consumer): while the workload rolls over from the
	// original queue to its own, each message goes either to one of its
	// old pods or to the router, never both.
	Source(ctx context.Context) (Source, error)
	// CreateQueue creates the temporary queue name (idempotently), with
	// the consumer group the workload uses, and returns its env.
	CreateQueue(ctx context.Context, name string) (Env, error)
	// Drain moves the messages of temporary queue name that its consumer
	// has not acknowledged (never delivered, or delivered and not
	// acknowledged) into the temporary queue into, or into the original
	// queue when into is "", in order, and then deletes queue name. Its
	// consumers must have stopped. Interrupted, it can be called again:
	// each message moves exactly once.
	Drain(ctx context.Context, name, into string) (moved int, err error)
	// Discard deletes temporary queue name and what it holds: the copies
	// of a mirroring session, which their owners have anyway. Its
	// consumers must have stopped.
	Discard(ctx context.Context, name string) error
	// Queues lists the temporary queues that exist, for cleanup and
	// tests.
	Queues(ctx context.Context) ([]string, error)
	// Forget removes what the router left in the original queue's group
	// (a Redis consumer name), once it is settled.
	Forget(ctx context.Context) error
	Close() error
}

// ErrNotFound is wrapped by brokers when the original queue or the
// deployed consumer's group does not exist.
var ErrNotFound = errors.New("not found")
