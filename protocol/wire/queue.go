package wire

import (
	"errors"
	"fmt"
)

// Queue splitting (issue 16, docs/queues.md): a client of the operator
// asks for a share of a queue a deployed consumer reads. The filter and
// conflict semantics are protocol/queuesplit's; these messages carry them
// without that package's Kubernetes types, so agents and clients that
// only speak the wire stay small.
const (
	TypeQueueSplit       = "queue.split"
	TypeQueueSplitResult = "queue.split.result"

	// CapQueueSplit: the peer answers queue.split. Listed by the
	// operator only, when it can split queues; agents have none to split.
	CapQueueSplit Capability = "queue.split"
)

// QueueSplit asks for a split of a queue of a RemocalQueueConsumer in the
// session's namespace, for the session's lifetime. Its fields are those
// of protocol/queuesplit.Split, which the operator checks in full.
type QueueSplit struct {
	Consumer string       `json:"consumer"`
	Queue    string       `json:"queue,omitempty"`
	Mode     string       `json:"mode,omitempty"`
	Filter   *QueueFilter `json:"filter,omitempty"`
}

// QueueFilter selects messages by header (or attribute) and by JSON path
// into the body; values are regular expressions matched whole.
type QueueFilter struct {
	Headers map[string]string `json:"headers,omitempty"`
	Body    map[string]string `json:"body,omitempty"`
}

// Validate checks what the wire can check; the operator checks the rest
// (names, patterns, paths) with protocol/queuesplit.
func (q *QueueSplit) Validate() error {
	if q.Consumer == "" {
		return errors.New("queue.split: consumer is empty; name a RemocalQueueConsumer of the target's namespace")
	}
	switch q.Mode {
	case "", "steal", "mirror":
	default:
		return fmt.Errorf(`queue.split: mode %q; expected "steal" or "mirror"`, q.Mode)
	}
	return nil
}

// QueueSplitResult accepts a split. Env holds the workload's queue
// variables with the values that name the session's own queue: the
// client gives them to the local program over the target's environment,
// so it consumes its share unchanged.
type QueueSplitResult struct {
	// ID names the split in the session's status and events.
	ID string `json:"id"`
	// Queue is the consumer's queue split ("orders").
	Queue string            `json:"queue"`
	Env   map[string]string `json:"env"`
}

func (QueueSplit) MessageType() string       { return TypeQueueSplit }
func (QueueSplitResult) MessageType() string { return TypeQueueSplitResult }

func init() {
	registry[TypeQueueSplit] = func() Message { return &QueueSplit{} }
	registry[TypeQueueSplitResult] = func() Message { return &QueueSplitResult{} }
}
