package wire

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// HTTPFilter selects HTTP requests of a subscription. A request matches when
// every listed header has a value matching its pattern, the path matches Path
// (if set) and the method is one of Methods (if any). Patterns are Go regular
// expressions matched against the whole value or path (they are anchored), so
// "alice" does not match "malice"; write "/api/.*" for a prefix.
type HTTPFilter struct {
	// Headers maps a header name (case-insensitive) to a value pattern.
	Headers map[string]string `json:"headers,omitempty"`
	// Path is a pattern for the request path, without the query.
	Path string `json:"path,omitempty"`
	// Methods lists accepted methods, upper case.
	Methods []string `json:"methods,omitempty"`
}

// Validate checks that the filter can select something and that every
// pattern compiles.
func (f *HTTPFilter) Validate() error {
	if len(f.Headers) == 0 && f.Path == "" && len(f.Methods) == 0 {
		return fmt.Errorf("an HTTP filter needs at least one of headers, path or methods; omit the filter to take every request")
	}
	for name, pattern := range f.Headers {
		if name == "" || strings.ContainsAny(name, " :\r\n\t") {
			return fmt.Errorf("header name %q is not a valid HTTP header name", name)
		}
		if _, err := compileAnchored(pattern); err != nil {
			return fmt.Errorf("header %q: pattern %q: %w", name, pattern, err)
		}
	}
	if f.Path != "" {
		if _, err := compileAnchored(f.Path); err != nil {
			return fmt.Errorf("path pattern %q: %w", f.Path, err)
		}
	}
	for _, m := range f.Methods {
		if m == "" || m != strings.ToUpper(m) || strings.ContainsAny(m, " \r\n\t") {
			return fmt.Errorf("method %q must be a single upper-case token such as GET", m)
		}
	}
	return nil
}

// String renders the filter for humans, in a stable order.
func (f *HTTPFilter) String() string {
	if f == nil {
		return "no filter"
	}
	var parts []string
	names := make([]string, 0, len(f.Headers))
	for n := range f.Headers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("header %s=%q", http.CanonicalHeaderKey(n), f.Headers[n]))
	}
	if f.Path != "" {
		parts = append(parts, fmt.Sprintf("path=%q", f.Path))
	}
	if len(f.Methods) > 0 {
		parts = append(parts, "methods="+strings.Join(f.Methods, ","))
	}
	return strings.Join(parts, " ")
}

func compileAnchored(pattern string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + pattern + `)$`)
}

// CompiledFilter is an HTTPFilter ready to match requests.
type CompiledFilter struct {
	spec    HTTPFilter
	headers []headerMatcher
	path    *regexp.Regexp
	methods map[string]bool
}

type headerMatcher struct {
	name    string
	pattern *regexp.Regexp
}

// Compile validates and compiles f.
func (f *HTTPFilter) Compile() (*CompiledFilter, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	c := &CompiledFilter{spec: *f}
	names := make([]string, 0, len(f.Headers))
	for n := range f.Headers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		re, _ := compileAnchored(f.Headers[n])
		c.headers = append(c.headers, headerMatcher{name: http.CanonicalHeaderKey(n), pattern: re})
	}
	if f.Path != "" {
		c.path, _ = compileAnchored(f.Path)
	}
	if len(f.Methods) > 0 {
		c.methods = make(map[string]bool, len(f.Methods))
		for _, m := range f.Methods {
			c.methods[m] = true
		}
	}
	return c, nil
}

// Spec returns the filter this was compiled from.
func (c *CompiledFilter) Spec() HTTPFilter { return c.spec }

// Match reports whether a request with this method, path and header matches.
// A header with several values matches if any value does.
func (c *CompiledFilter) Match(method, path string, header http.Header) bool {
	if c.methods != nil && !c.methods[method] {
		return false
	}
	if c.path != nil && !c.path.MatchString(path) {
		return false
	}
	for _, h := range c.headers {
		ok := false
		for _, v := range header.Values(h.name) {
			if h.pattern.MatchString(v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
