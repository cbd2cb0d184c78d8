// Package glob matches environment variable names against the glob patterns
// used in env include/exclude lists (the agent wire protocol and the config
// file). The syntax is deliberately small and has no path semantics, unlike
// path.Match: '*' matches any run of characters (including none), '?' one
// character, and every other character itself. Several patterns may be
// written in one string separated by ';', the form mirrord users know.
package glob

import "strings"

// Match reports whether name matches pattern.
func Match(pattern, name string) bool {
	// Iterative matching with single-star backtracking: linear in practice
	// and never exponential, unlike the naive recursive form.
	p, n := 0, 0
	starP, starN := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			starP, starN = p, n
			p++
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == name[n]):
			p++
			n++
		case starP >= 0:
			starN++
			p, n = starP+1, starN
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Split expands patterns written as "A*;B_?" into separate patterns and drops
// empty ones.
func Split(patterns []string) []string {
	var out []string
	for _, p := range patterns {
		for _, part := range strings.Split(p, ";") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// Selector decides which names pass an include and an exclude list.
type Selector struct {
	include, exclude []string
}

// NewSelector builds a selector. An empty include list includes everything.
func NewSelector(include, exclude []string) Selector {
	return Selector{include: Split(include), exclude: Split(exclude)}
}

// Selects reports whether name is included and not excluded.
func (s Selector) Selects(name string) bool {
	if len(s.include) > 0 && !anyMatch(s.include, name) {
		return false
	}
	return !anyMatch(s.exclude, name)
}

func anyMatch(patterns []string, name string) bool {
	for _, p := range patterns {
		if Match(p, name) {
			return true
		}
	}
	return false
}
