// Package queuesplit is the contract of queue splitting: a session asks
// for the messages of a shared queue that match its filter, and the
// deployed consumer keeps the rest.
//
//   - Split is what a session's configuration carries (.remocal/config.json,
//     "queueSplits"): which queue, which messages, steal or mirror.
//   - RemocalQueueConsumer (group queues.remocal.dev, namespaced) is the
//     custom resource a platform team writes to declare a splittable
//     consumer: the workload, its broker and the environment variables that
//     name the queue it consumes.
//   - Conflicts is the rule between two sessions' splits of one queue, so
//     that the operator, which enforces it, and the daemon, which explains
//     it, agree.
//
// Golden vectors for every type are in protocol/testdata/queuesplit.
package queuesplit

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Mode says whether matching messages are taken from the deployed consumer
// or copied.
type Mode string

// Modes.
const (
	// ModeMirror gives the session a copy of each matching message; the
	// deployed consumer still gets every message.
	ModeMirror Mode = "mirror"
	// ModeSteal gives each matching message to the session only.
	ModeSteal Mode = "steal"
)

// DefaultMode is the mode of a split that names none: mirror, as for
// incoming traffic, because it takes nothing away from the deployed
// consumer.
const DefaultMode = ModeMirror

// Valid reports whether m is one of the modes; "" (the default) is not.
func (m Mode) Valid() bool { return m == ModeMirror || m == ModeSteal }

// Split is one session's request for messages of a shared queue.
type Split struct {
	// Consumer names the RemocalQueueConsumer (in the target's namespace)
	// that declares the queue.
	Consumer string `json:"consumer"`
	// Queue names one of the consumer's queues; it may be omitted when
	// the consumer declares only one.
	Queue string `json:"queue,omitempty"`
	// Mode is steal or mirror (DefaultMode when empty).
	Mode Mode `json:"mode,omitempty"`
	// Filter selects the messages; nil selects every message (an
	// unfiltered steal takes the whole queue and excludes every other
	// steal of it).
	Filter *Filter `json:"filter,omitempty"`
}

// EffectiveMode is the split's mode with the default applied.
func (s Split) EffectiveMode() Mode {
	if s.Mode == "" {
		return DefaultMode
	}
	return s.Mode
}

// QueueKey identifies the queue a split is about, for grouping splits:
// "consumer" or "consumer/queue".
func (s Split) QueueKey() string {
	if s.Queue == "" {
		return s.Consumer
	}
	return s.Consumer + "/" + s.Queue
}

// Validate checks the split on its own (whether the consumer exists is
// the operator's to say). Every problem is reported, each prefixed with
// the field it is about.
func (s Split) Validate() error {
	var errs []error
	for _, p := range s.Problems() {
		errs = append(errs, p)
	}
	return errors.Join(errs...)
}

// Problem is one thing wrong with a split, at a field: Field holds the
// keys from the split down ("filter", "headers", "tenant").
type Problem struct {
	Field   []string
	Message string
}

func (p Problem) Error() string { return strings.Join(p.Field, ".") + ": " + p.Message }

// Problems lists what is wrong with the split, each at its field, for
// callers that report positions (the configuration file's checks).
func (s Split) Problems() []Problem {
	var ps []Problem
	add := func(err error, field ...string) {
		if err != nil {
			ps = append(ps, Problem{Field: field, Message: err.Error()})
		}
	}
	add(checkName(s.Consumer), "consumer")
	if s.Queue != "" {
		add(checkName(s.Queue), "queue")
	}
	if s.Mode != "" && !s.Mode.Valid() {
		add(fmt.Errorf(`got %q, expected "steal" or "mirror"`, s.Mode), "mode")
	}
	if s.Filter != nil {
		for _, p := range s.Filter.problems() {
			ps = append(ps, Problem{Field: append([]string{"filter"}, p.Field...), Message: p.Message})
		}
	}
	return ps
}

// checkName accepts a Kubernetes object name (a DNS-1123 subdomain).
func checkName(s string) error {
	if s == "" {
		return errors.New("is empty; name a RemocalQueueConsumer (kubectl get remocalqueueconsumers)")
	}
	if len(s) > 253 || !nameRE.MatchString(s) {
		return fmt.Errorf("got %q, expected lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", s)
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// Filter selects messages. A message matches when every listed header
// (or attribute) has a value matching its pattern and every listed JSON
// path of the body holds a value matching its pattern. Patterns are Go
// regular expressions matched against the whole value, as in HTTP filters:
// "a" does not match "ab".
type Filter struct {
	// Headers maps a header or attribute name to a value pattern. Names
	// compare exactly: brokers keep their case (Redis stream fields,
	// NATS headers), so "Tenant" and "tenant" are different headers.
	Headers map[string]string `json:"headers,omitempty"`
	// Body maps a JSON path into the message body ("$.tenant",
	// "$.order.items[0].sku") to a value pattern. A string is matched as
	// it is, a number or boolean as its JSON text; a missing member, null,
	// an object, an array or a body that is not JSON does not match.
	Body map[string]string `json:"body,omitempty"`
}

// Validate checks that the filter selects on something and that every
// name, path and pattern is well formed.
func (f *Filter) Validate() error {
	var errs []error
	for _, p := range f.problems() {
		errs = append(errs, errors.New(p.Message))
	}
	return errors.Join(errs...)
}

func (f *Filter) problems() []Problem {
	if len(f.Headers) == 0 && len(f.Body) == 0 {
		return []Problem{{Message: "a filter needs headers or body (or both); omit the filter to take every message"}}
	}
	var ps []Problem
	add := func(err error, field ...string) {
		ps = append(ps, Problem{Field: field, Message: err.Error()})
	}
	for _, name := range slices.Sorted(maps.Keys(f.Headers)) {
		if name == "" || strings.ContainsAny(name, " :\r\n\t") {
			add(fmt.Errorf("header name %q is not valid: no spaces, colons or control characters", name), "headers", name)
		}
		if _, err := compileAnchored(f.Headers[name]); err != nil {
			add(fmt.Errorf("header %q: pattern %q: %w", name, f.Headers[name], err), "headers", name)
		}
	}
	for _, path := range slices.Sorted(maps.Keys(f.Body)) {
		if _, err := ParseJSONPath(path); err != nil {
			add(fmt.Errorf("body path %q: %w", path, err), "body", path)
		}
		if _, err := compileAnchored(f.Body[path]); err != nil {
			add(fmt.Errorf("body path %q: pattern %q: %w", path, f.Body[path], err), "body", path)
		}
	}
	return ps
}

// String renders the filter for humans, in a stable order.
func (f *Filter) String() string {
	if f == nil {
		return "no filter"
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(f.Headers)) {
		parts = append(parts, fmt.Sprintf("header %s=%q", n, f.Headers[n]))
	}
	for _, p := range slices.Sorted(maps.Keys(f.Body)) {
		parts = append(parts, fmt.Sprintf("body %s=%q", p, f.Body[p]))
	}
	return strings.Join(parts, " ")
}

func compileAnchored(pattern string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + pattern + `)$`)
}
