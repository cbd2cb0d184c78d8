package incoming

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/remocal/remocal/protocol/wire"
)

type fakeClient struct{ id, name string }

func (f fakeClient) ID() string   { return f.id }
func (f fakeClient) Name() string { return f.name }
func (f fakeClient) OpenStream(context.Context) (net.Conn, error) {
	panic("conflict rules never open streams")
}

func sub(t *testing.T, mode wire.Mode, f *wire.HTTPFilter) *subscription {
	t.Helper()
	s := &subscription{id: "s1", client: fakeClient{"c1", "bob@desk"}, port: 8080, mode: mode}
	if f != nil {
		c, err := f.Compile()
		if err != nil {
			t.Fatal(err)
		}
		s.filter, s.spec = c, *f
	}
	return s
}

func headers(kv ...string) *wire.HTTPFilter {
	f := &wire.HTTPFilter{Headers: map[string]string{}}
	for i := 0; i < len(kv); i += 2 {
		f.Headers[kv[i]] = kv[i+1]
	}
	return f
}

func TestConflictRules(t *testing.T) {
	withPath := func(f *wire.HTTPFilter, p string) *wire.HTTPFilter { f.Path = p; return f }
	withMethods := func(f *wire.HTTPFilter, m ...string) *wire.HTTPFilter { f.Methods = m; return f }
	cases := []struct {
		name         string
		existingMode wire.Mode
		existing     *wire.HTTPFilter
		newMode      wire.Mode
		filter       *wire.HTTPFilter
		conflict     bool
	}{
		{"mirror beside unfiltered steal", wire.ModeSteal, nil, wire.ModeMirror, nil, false},
		{"steal beside mirror", wire.ModeMirror, nil, wire.ModeSteal, nil, false},
		{"two mirrors", wire.ModeMirror, nil, wire.ModeMirror, nil, false},
		{"unfiltered steal is exclusive", wire.ModeSteal, nil, wire.ModeSteal, nil, true},
		{"filtered steal after unfiltered", wire.ModeSteal, nil, wire.ModeSteal, headers("x-user", "alice"), true},
		{"unfiltered steal after filtered", wire.ModeSteal, headers("x-user", "alice"), wire.ModeSteal, nil, true},
		{"different header values", wire.ModeSteal, headers("x-user", "alice"), wire.ModeSteal, headers("x-user", "bob"), false},
		{"header names case-insensitive", wire.ModeSteal, headers("x-user", "alice"), wire.ModeSteal, headers("X-User", "alice"), true},
		{"identical headers", wire.ModeSteal, headers("x-user", "alice"), wire.ModeSteal, headers("x-user", "alice"), true},
		{"subset of existing", wire.ModeSteal, headers("x-user", "alice", "x-env", "dev"), wire.ModeSteal, headers("x-user", "alice"), true},
		{"superset of existing", wire.ModeSteal, headers("x-user", "alice"), wire.ModeSteal, headers("x-user", "alice", "x-env", "dev"), true},
		{"unrelated headers", wire.ModeSteal, headers("x-user", "alice"), wire.ModeSteal, headers("x-env", "dev"), false},
		{"header beats path-only", wire.ModeSteal, &wire.HTTPFilter{Path: "/api/.*"}, wire.ModeSteal, headers("x-user", "alice"), false},
		{"same path-only", wire.ModeSteal, &wire.HTTPFilter{Path: "/api/.*"}, wire.ModeSteal, &wire.HTTPFilter{Path: "/api/.*"}, true},
		{"different path-only", wire.ModeSteal, &wire.HTTPFilter{Path: "/api/.*"}, wire.ModeSteal, &wire.HTTPFilter{Path: "/admin"}, false},
		{"same headers different paths", wire.ModeSteal, withPath(headers("x-user", "alice"), "/a"), wire.ModeSteal, withPath(headers("x-user", "alice"), "/b"), false},
		{"same headers, one without path", wire.ModeSteal, withPath(headers("x-user", "alice"), "/a"), wire.ModeSteal, headers("x-user", "alice"), true},
		{"disjoint methods", wire.ModeSteal, withMethods(headers("x-user", "alice"), "GET"), wire.ModeSteal, withMethods(headers("x-user", "alice"), "POST"), false},
		{"overlapping methods", wire.ModeSteal, withMethods(headers("x-user", "alice"), "GET", "PUT"), wire.ModeSteal, withMethods(headers("x-user", "alice"), "PUT"), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			existing := []*subscription{sub(t, c.existingMode, c.existing)}
			got := conflictWith(existing, c.newMode, c.filter)
			if (got != nil) != c.conflict {
				t.Fatalf("conflict = %v, want %v", got != nil, c.conflict)
			}
		})
	}
}

func TestConflictErrorNamesHolder(t *testing.T) {
	holder := sub(t, wire.ModeSteal, nil)
	err := conflictError(8080, holder, nil)
	if err.Code != wire.CodeConflict || err.Holder == nil || err.Holder.Client != "bob@desk" || err.Holder.Subscription != "s1" {
		t.Fatalf("conflict error = %+v", err)
	}
	for _, want := range []string{"port 8080", "without a filter", "bob@desk", "mirror mode"} {
		if !strings.Contains(err.Message, want) {
			t.Errorf("message %q lacks %q", err.Message, want)
		}
	}
	filtered := conflictError(8080, sub(t, wire.ModeSteal, headers("x-user", "alice")), headers("x-user", "alice"))
	if !strings.Contains(filtered.Message, `header X-User="alice"`) || filtered.Holder.Filter == nil {
		t.Errorf("filtered conflict error = %+v", filtered)
	}
}

func TestRequestRoutePrecedence(t *testing.T) {
	m := New(nil, nil, nil)
	pathOnly := sub(t, wire.ModeSteal, &wire.HTTPFilter{Path: "/api/.*"})
	pathOnly.id = "path"
	alice := sub(t, wire.ModeSteal, headers("x-user", "alice"))
	alice.id = "alice"
	mirror := sub(t, wire.ModeMirror, &wire.HTTPFilter{Path: "/api/.*"})
	mirror.id = "mirror"
	// Registration order puts the path-only filter first; the header
	// filter must still win.
	m.byPort[8080] = []*subscription{pathOnly, alice, mirror}

	route := func(path, user string) route {
		req := mustRequest(t, path, user)
		return m.requestRoute(8080, req)
	}
	if r := route("/api/items", "alice"); r.steal != alice || len(r.mirrors) != 1 {
		t.Errorf("alice's api request: steal=%v mirrors=%d", r.steal, len(r.mirrors))
	}
	if r := route("/api/items", "bob"); r.steal != pathOnly {
		t.Errorf("bob's api request should go to the path filter, got %v", r.steal)
	}
	if r := route("/health", "carol"); r.steal != nil || len(r.mirrors) != 0 {
		t.Errorf("unmatched request should go to the application, got %+v", r)
	}
}
