package queuesplit

// Conflict rule between two sessions' splits of one queue, the queue
// counterpart of wire.Conflicts for HTTP filters (design §3):
//
//   - splits of different queues never conflict;
//   - mirrors never conflict: every mirroring session gets its own copy,
//     and the deployed consumer (or the stealing session) still gets the
//     message;
//   - an unfiltered steal is exclusive: it conflicts with any other steal
//     of the queue;
//   - two filtered steals conflict when one filter's conditions (header
//     names and body paths with their patterns) are a subset of the
//     other's, since every message the larger one selects is then also
//     selected by the smaller one: two sessions with the same filter, or
//     tenant=a against tenant=a with region=eu;
//   - filters that give the same header or body path different patterns
//     never conflict: a message is assumed to carry one value per header
//     (tenant=a and tenant=b, as alice's and bob's);
//   - filters on different names (tenant=a against region=eu) do not
//     conflict either, and a message both select goes to the session that
//     split the queue first: a steal delivers each message to exactly one
//     session, the oldest one whose filter matches.
//
// A conflicting steal is refused, naming the holder, as an HTTP steal is.

// Conflicts reports whether splits a and b cannot both hold.
func Conflicts(a, b Split) bool {
	if a.QueueKey() != b.QueueKey() || a.EffectiveMode() != ModeSteal || b.EffectiveMode() != ModeSteal {
		return false
	}
	if a.Filter == nil || b.Filter == nil {
		return true
	}
	ca, cb := conditions(a.Filter), conditions(b.Filter)
	for k, pa := range ca {
		if pb, ok := cb[k]; ok && pa != pb {
			return false
		}
	}
	return subset(ca, cb) || subset(cb, ca)
}

// conditions flattens a filter into one map, header names and body paths
// kept apart by a prefix no name can start with.
func conditions(f *Filter) map[string]string {
	out := make(map[string]string, len(f.Headers)+len(f.Body))
	for k, v := range f.Headers {
		out["h\x00"+k] = v
	}
	for k, v := range f.Body {
		out["b\x00"+k] = v
	}
	return out
}

func subset(small, large map[string]string) bool {
	for k, v := range small {
		if w, ok := large[k]; !ok || v != w {
			return false
		}
	}
	return true
}
