package wire

import "testing"

func TestConflicts(t *testing.T) {
	headers := func(kv ...string) *HTTPFilter {
		f := &HTTPFilter{Headers: map[string]string{}}
		for i := 0; i < len(kv); i += 2 {
			f.Headers[kv[i]] = kv[i+1]
		}
		return f
	}
	withPath := func(f *HTTPFilter, p string) *HTTPFilter { f.Path = p; return f }
	withMethods := func(f *HTTPFilter, m ...string) *HTTPFilter { f.Methods = m; return f }
	steal := func(f *HTTPFilter) Subscribe { return Subscribe{Port: 8080, Mode: ModeSteal, Filter: f} }
	mirror := func(f *HTTPFilter) Subscribe { return Subscribe{Port: 8080, Mode: ModeMirror, Filter: f} }
	cases := []struct {
		name     string
		a, b     Subscribe
		conflict bool
	}{
		{"mirror beside unfiltered steal", steal(nil), mirror(nil), false},
		{"two mirrors", mirror(nil), mirror(nil), false},
		{"unfiltered steal is exclusive", steal(nil), steal(nil), true},
		{"unfiltered steals of different ports", steal(nil), Subscribe{Port: 9090, Mode: ModeSteal}, false},
		{"filtered after unfiltered", steal(nil), steal(headers("x-user", "alice")), true},
		{"different header values", steal(headers("x-user", "alice")), steal(headers("x-user", "bob")), false},
		{"header names case-insensitive", steal(headers("x-user", "alice")), steal(headers("X-User", "alice")), true},
		{"subset", steal(headers("x-user", "alice", "x-env", "dev")), steal(headers("x-user", "alice")), true},
		{"unrelated headers", steal(headers("x-user", "alice")), steal(headers("x-env", "dev")), false},
		{"header beats path-only", steal(&HTTPFilter{Path: "/api/.*"}), steal(headers("x-user", "alice")), false},
		{"same path-only", steal(&HTTPFilter{Path: "/api/.*"}), steal(&HTTPFilter{Path: "/api/.*"}), true},
		{"different path-only", steal(&HTTPFilter{Path: "/api/.*"}), steal(&HTTPFilter{Path: "/admin"}), false},
		{"same headers, different paths", steal(withPath(headers("x-user", "a"), "/a")), steal(withPath(headers("x-user", "a"), "/b")), false},
		{"same headers, one without path", steal(withPath(headers("x-user", "a"), "/a")), steal(headers("x-user", "a")), true},
		{"disjoint methods", steal(withMethods(headers("x-user", "a"), "GET")), steal(withMethods(headers("x-user", "a"), "POST")), false},
		{"overlapping methods", steal(withMethods(headers("x-user", "a"), "GET", "PUT")), steal(withMethods(headers("x-user", "a"), "PUT")), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Conflicts(c.a, c.b); got != c.conflict {
				t.Errorf("Conflicts(a, b) = %v, want %v", got, c.conflict)
			}
			if got := Conflicts(c.b, c.a); got != c.conflict {
				t.Errorf("Conflicts(b, a) = %v, want %v: the rules must be symmetric", got, c.conflict)
			}
		})
	}
}
