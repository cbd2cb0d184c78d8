package session

import (
	"context"
	"fmt"
	"slices"

	"github.com/remocal/remocal/protocol/wire"
)

// splitQueues asks the operator for the configuration's queue splits and
// gives the local program its queues: each split's variables override
// the target's (whose values name the deployed consumer's queue now).
func (s *Session) splitQueues(ctx context.Context, vars map[string]string) error {
	if len(s.cfg.QueueSplits) == 0 {
		return nil
	}
	if !wire.HasCapability(s.client.Welcome().Capabilities, wire.CapQueueSplit) {
		return fmt.Errorf("queueSplits need remocal's operator, which %s is not reached through (or it runs with --queue-splitting=false): connect through the operator (kubernetes.operator in the configuration) or remove queueSplits", s.opts.Connector.Describe())
	}
	for i, sp := range s.cfg.QueueSplits {
		req := &wire.QueueSplit{Consumer: sp.Consumer, Queue: sp.Queue, Mode: string(sp.EffectiveMode())}
		if sp.Filter != nil {
			req.Filter = &wire.QueueFilter{Headers: sp.Filter.Headers, Body: sp.Filter.Body}
		}
		res, err := s.client.Call(ctx, req)
		if err != nil {
			return fmt.Errorf("queueSplits[%d] (%s): %w", i, sp.QueueKey(), err)
		}
		r, ok := res.(*wire.QueueSplitResult)
		if !ok {
			return fmt.Errorf("queueSplits[%d]: the operator answered %s to queue.split", i, res.MessageType())
		}
		for k, v := range r.Env {
			vars[k] = v
		}
		s.mu.Lock()
		s.splits = append(s.splits, *r)
		s.mu.Unlock()
		s.opts.Logger.Info("queue split", "consumer", sp.Consumer, "queue", r.Queue, "mode", req.Mode, "env", r.Env)
	}
	return nil
}

// QueueSplits are the splits the operator granted, in configuration order.
func (s *Session) QueueSplits() []wire.QueueSplitResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.splits)
}
