package queuesplit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
)

// JSONPath is a parsed path into a JSON document: "$" followed by member
// names (".name") and array indexes ("[0]"). Wildcards, filters and
// slices are not supported: a filter names one value.
type JSONPath []pathStep

type pathStep struct {
	member string
	index  int // used when member is ""
}

// ParseJSONPath parses "$.a.b[2].c".
func ParseJSONPath(s string) (JSONPath, error) {
	if len(s) == 0 || s[0] != '$' {
		return nil, errors.New(`a JSON path starts with "$", as in "$.tenant"`)
	}
	var p JSONPath
	rest := s[1:]
	for len(rest) > 0 {
		switch rest[0] {
		case '.':
			i := 1
			for i < len(rest) && isMemberByte(rest[i]) {
				i++
			}
			if i == 1 {
				return nil, fmt.Errorf(`expected a member name after "." at offset %d; names are letters, digits, '_' and '-'`, len(s)-len(rest))
			}
			p = append(p, pathStep{member: rest[1:i]})
			rest = rest[i:]
		case '[':
			end := bytes.IndexByte([]byte(rest), ']')
			if end < 0 {
				return nil, fmt.Errorf(`unclosed "[" at offset %d`, len(s)-len(rest))
			}
			n, err := strconv.Atoi(rest[1:end])
			if err != nil || n < 0 || rest[1] == '+' {
				return nil, fmt.Errorf(`expected an array index such as [0] at offset %d, got %q`, len(s)-len(rest), rest[:end+1])
			}
			p = append(p, pathStep{index: n})
			rest = rest[end+1:]
		default:
			return nil, fmt.Errorf(`unexpected %q at offset %d; write ".name" or "[index]"`, rest[0], len(s)-len(rest))
		}
	}
	if len(p) == 0 {
		return nil, errors.New(`the path "$" names the whole body; name a member, as in "$.tenant"`)
	}
	return p, nil
}

func isMemberByte(b byte) bool {
	return b == '_' || b == '-' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}

// lookup returns the value at p in doc as text to match, and whether there
// is one (a string, number or boolean).
func (p JSONPath) lookup(doc any) (string, bool) {
	v := doc
	for _, st := range p {
		if st.member != "" {
			m, ok := v.(map[string]any)
			if !ok {
				return "", false
			}
			if v, ok = m[st.member]; !ok {
				return "", false
			}
			continue
		}
		a, ok := v.([]any)
		if !ok || st.index >= len(a) {
			return "", false
		}
		v = a[st.index]
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// Matcher is a Filter ready to match messages. The zero of *Matcher (nil)
// matches every message, as a split without a filter does.
type Matcher struct {
	headers []headerMatcher
	body    []bodyMatcher
}

type headerMatcher struct {
	name    string
	pattern *regexp.Regexp
}

type bodyMatcher struct {
	path    JSONPath
	pattern *regexp.Regexp
}

// Compile validates and compiles f; a nil f compiles to a nil Matcher,
// which matches everything.
func (f *Filter) Compile() (*Matcher, error) {
	if f == nil {
		return nil, nil
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	m := &Matcher{}
	for _, n := range slices.Sorted(maps.Keys(f.Headers)) {
		re, _ := compileAnchored(f.Headers[n])
		m.headers = append(m.headers, headerMatcher{name: n, pattern: re})
	}
	for _, s := range slices.Sorted(maps.Keys(f.Body)) {
		p, _ := ParseJSONPath(s)
		re, _ := compileAnchored(f.Body[s])
		m.body = append(m.body, bodyMatcher{path: p, pattern: re})
	}
	return m, nil
}

// NeedsBody reports whether matching reads the body, so a router can
// leave bodies it does not need unparsed.
func (m *Matcher) NeedsBody() bool { return m != nil && len(m.body) > 0 }

// Message is what a Matcher sees of a message: its headers (a header with
// several values matches if any value does) and its body, parsed lazily.
type Message struct {
	Headers map[string][]string
	Body    []byte

	parsed  bool
	doc     any
	docGood bool
}

// Match reports whether msg matches.
func (m *Matcher) Match(msg *Message) bool {
	if m == nil {
		return true
	}
	for _, h := range m.headers {
		if !slices.ContainsFunc(msg.Headers[h.name], h.pattern.MatchString) {
			return false
		}
	}
	if len(m.body) == 0 {
		return true
	}
	doc, ok := msg.document()
	if !ok {
		return false
	}
	for _, b := range m.body {
		v, ok := b.path.lookup(doc)
		if !ok || !b.pattern.MatchString(v) {
			return false
		}
	}
	return true
}

// document parses the body once per message, whatever the number of
// filters that read it.
func (msg *Message) document() (any, bool) {
	if !msg.parsed {
		msg.parsed = true
		d := json.NewDecoder(bytes.NewReader(msg.Body))
		d.UseNumber()
		if err := d.Decode(&msg.doc); err == nil && !d.More() {
			msg.docGood = true
		}
	}
	return msg.doc, msg.docGood
}
