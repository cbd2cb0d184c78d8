package incoming

import (
	"fmt"

	"github.com/remocal/remocal/protocol/wire"
)

// Conflict rules between subscriptions on one port, after the semantics
// Telepresence documents for personal intercepts:
//
//   - mirrors never conflict: every mirroring client gets its own copy;
//   - an unfiltered steal is exclusive: it conflicts with any other steal;
//   - filters that declare different values for the same header never
//     conflict: no request can carry both (one value per filter is assumed);
//   - a header filter conflicts with another whose headers are a subset of
//     its own (every request for the larger set also matches the smaller);
//   - header filters take precedence over filters without headers, so the
//     two kinds never conflict;
//   - filters without headers conflict only when their paths are equal;
//     different paths are routed by subscription order;
//   - filters whose method lists are disjoint never conflict.
//
// Where two filters may both match a request without conflicting, routing
// picks the one that takes precedence, then the older subscription.

// conflictWith returns the first existing subscription that a new steal with
// filter would conflict with, or nil.
func conflictWith(existing []*subscription, mode wire.Mode, filter *wire.HTTPFilter) *subscription {
	if mode != wire.ModeSteal {
		return nil
	}
	for _, s := range existing {
		if s.mode != wire.ModeSteal {
			continue
		}
		if s.filter == nil || filter == nil || filtersConflict(&s.spec, filter) {
			return s
		}
	}
	return nil
}

func filtersConflict(a, b *wire.HTTPFilter) bool {
	if len(a.Methods) > 0 && len(b.Methods) > 0 && !intersects(a.Methods, b.Methods) {
		return false
	}
	aHeaders, bHeaders := len(a.Headers) > 0, len(b.Headers) > 0
	if aHeaders != bHeaders {
		return false
	}
	if !aHeaders {
		return a.Path == b.Path
	}
	if declaresDifferentValue(a.Headers, b.Headers) {
		return false
	}
	if !subset(a.Headers, b.Headers) && !subset(b.Headers, a.Headers) {
		return false
	}
	return a.Path == "" || b.Path == "" || a.Path == b.Path
}

// declaresDifferentValue reports whether a and b name the same header with
// different patterns. Header names compare case-insensitively.
func declaresDifferentValue(a, b map[string]string) bool {
	canonB := canonical(b)
	for name, pa := range canonical(a) {
		if pb, ok := canonB[name]; ok && pa != pb {
			return true
		}
	}
	return false
}

func subset(small, large map[string]string) bool {
	canonLarge := canonical(large)
	for name, p := range canonical(small) {
		if q, ok := canonLarge[name]; !ok || p != q {
			return false
		}
	}
	return true
}

func canonical(h map[string]string) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[canonicalHeader(k)] = v
	}
	return out
}

func intersects(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// conflictError explains a refused subscription, naming the holder and what
// the user can do about it.
func conflictError(port uint16, holder *subscription, filter *wire.HTTPFilter) *wire.Error {
	held := "without a filter"
	if holder.filter != nil {
		held = "with filter " + holder.spec.String()
	}
	var hint string
	switch {
	case holder.filter == nil:
		hint = "ask them to stop, use mirror mode, or wait for their session to end"
	case filter == nil:
		hint = "steal with an HTTP filter that does not overlap theirs (for example a header only your requests carry), or use mirror mode"
	default:
		hint = "use a filter with a different header value, or use mirror mode"
	}
	return &wire.Error{
		Code: wire.CodeConflict,
		Message: fmt.Sprintf("port %d is already stolen %s by %s (subscription %s); %s",
			port, held, holder.client.Name(), holder.id, hint),
		Holder: holder.holder(),
	}
}
