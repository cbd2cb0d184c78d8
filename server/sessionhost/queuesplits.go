package sessionhost

import (
	"maps"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/protocol/wire"
)

// queueSplits describes a session's queue splits for the daemon's
// clients: the mode and filter the configuration asked for, the queue and
// variables the operator granted. The session asks for each entry in
// order and fails unless every one is granted, so granted[i] answers
// asked[i]; an entry without an answer (never, short of a bug) is left
// out rather than shown as granted.
func queueSplits(asked []queuesplit.Split, granted []wire.QueueSplitResult) []daemon.QueueSplit {
	n := min(len(asked), len(granted))
	if n == 0 {
		return nil
	}
	out := make([]daemon.QueueSplit, 0, n)
	for i, g := range granted[:n] {
		a := asked[i]
		q := daemon.QueueSplit{Consumer: a.Consumer, Queue: g.Queue, Mode: a.EffectiveMode(), Env: maps.Clone(g.Env)}
		if q.Queue == "" {
			q.Queue = a.Queue
		}
		if q.Env == nil {
			q.Env = map[string]string{}
		}
		if a.Filter != nil {
			q.Filter = &queuesplit.Filter{Headers: maps.Clone(a.Filter.Headers), Body: maps.Clone(a.Filter.Body)}
		}
		out = append(out, q)
	}
	return out
}
