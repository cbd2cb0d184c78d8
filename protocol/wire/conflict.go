package wire

import "net/http"

// Conflict rules between two subscriptions on one port, after the
// semantics Telepresence documents for personal intercepts. The agent
// applies them among its clients, the operator among its sessions:
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

// Conflicts reports whether subscriptions a and b cannot both hold: both
// steal the same port and some request could match both filters without
// one taking precedence.
func Conflicts(a, b Subscribe) bool {
	if a.Port != b.Port || a.Mode != ModeSteal || b.Mode != ModeSteal {
		return false
	}
	if a.Filter == nil || b.Filter == nil {
		return true
	}
	return filtersConflict(a.Filter, b.Filter)
}

func filtersConflict(a, b *HTTPFilter) bool {
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
		out[http.CanonicalHeaderKey(k)] = v
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
