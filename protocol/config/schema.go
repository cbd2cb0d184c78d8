package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

//go:embed schema.json
var schemaJSON []byte

// Schema returns the JSON Schema (draft 2020-12) of the configuration file,
// for editors and for `remocal verify-config --schema`.
func Schema() []byte { return bytes.Clone(schemaJSON) }

// schemaURL names the embedded schema inside the validator; nothing is ever
// fetched from it.
const schemaURL = "urn:remocal:config.schema.json"

type compiledSchema struct {
	schema *jsonschema.Schema
	raw    any // the schema document, for annotations the validator drops
}

var loadSchema = sync.OnceValues(func() (*compiledSchema, error) {
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return nil, fmt.Errorf("embedded config schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	// The value checks that patterns cannot express run as formats, so a
	// bad value is reported during validation with its exact path. Editors
	// do not know these format names and ignore them.
	for name, check := range map[string]func(string) error{
		"remocal-target":          func(s string) error { _, err := ParseTarget(s); return err },
		"remocal-agent-address":   checkAgentAddress,
		"go-duration":             func(s string) error { _, err := ParseDuration(s); return err },
		"env-name":                checkEnvName,
		"remocal-path-rule":       checkPathRule,
		"remocal-endpoint":        func(s string) error { _, err := ParseEndpoint(s); return err },
		"remocal-dns-name":        checkDNSPattern,
		"remocal-executable-name": checkExecutableName,
	} {
		c.RegisterFormat(&jsonschema.Format{Name: name, Validate: func(v any) error {
			if s, ok := v.(string); ok {
				return check(s)
			}
			return nil
		}})
	}
	if err := c.AddResource(schemaURL, raw); err != nil {
		return nil, fmt.Errorf("embedded config schema: %w", err)
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("embedded config schema: %w", err)
	}
	return &compiledSchema{schema: s, raw: raw}, nil
})

// validateSchema validates doc and turns every failure into a finding with
// a message written for people. It also removes each rejected value from
// doc (an object member is deleted, a list element set to null) so that
// what remains can be decoded and checked further.
func validateSchema(doc any) ([]finding, error) {
	cs, err := loadSchema()
	if err != nil {
		return nil, err
	}
	err = cs.schema.Validate(doc)
	if err == nil {
		return nil, nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return nil, err
	}
	var leaves []*jsonschema.ValidationError
	collectLeaves(ve, &leaves)
	var found []finding
	var prune []func()
	for _, leaf := range leaves {
		fs, p := cs.explain(doc, leaf)
		found = append(found, fs...)
		if p != nil {
			prune = append(prune, p)
		}
	}
	// Prune after explaining everything, so each explanation still sees
	// the value it is about.
	for _, p := range prune {
		p()
	}
	return found, nil
}

// collectLeaves gathers the failures that have no further causes, which
// are the ones that say what is wrong; the others only group them. A
// propertyNames failure is kept whole because its causes are about the key
// as a value of its own, without the object's location.
func collectLeaves(ve *jsonschema.ValidationError, out *[]*jsonschema.ValidationError) {
	if _, ok := ve.ErrorKind.(*kind.PropertyNames); ok || len(ve.Causes) == 0 {
		*out = append(*out, ve)
		return
	}
	for _, c := range ve.Causes {
		collectLeaves(c, out)
	}
}

// explain describes one failure and returns how to remove the rejected
// value from doc.
func (cs *compiledSchema) explain(doc any, ve *jsonschema.ValidationError) ([]finding, func()) {
	parent, path, got := locateInstance(doc, ve.InstanceLocation)
	node := cs.node(ve.SchemaURL)
	var tok string
	if n := len(ve.InstanceLocation); n > 0 {
		tok = ve.InstanceLocation[n-1]
	}
	removeValue := func() { remove(parent, tok) }
	one := func(msg string) ([]finding, func()) {
		return []finding{{Problem: Problem{Path: path, Message: msg}}}, removeValue
	}
	switch k := ve.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		obj, _ := got.(map[string]any)
		allowed := slices.Sorted(maps.Keys(mapAt(node, "properties")))
		var fs []finding
		for _, name := range k.Properties {
			fs = append(fs, finding{Problem: Problem{Path: keyPath(path, name), Message: unknownKeyMessage(name, allowed)}, atKey: true})
		}
		return fs, func() {
			for _, name := range k.Properties {
				delete(obj, name)
			}
		}
	case *kind.PropertyNames:
		// The validator (v6.0.3) reports a propertyNames failure with an
		// instance location that later siblings may have overwritten, so
		// the object is found from the schema location instead, which
		// mirrors the instance path while only "properties" lead to it.
		if loc, ok := instanceFromSchema(ve.SchemaURL); ok {
			_, path, got = locateInstance(doc, loc)
		}
		obj, _ := got.(map[string]any)
		msg := fmt.Sprintf("key %q is not allowed here", k.Property)
		var leaves []*jsonschema.ValidationError
		for _, c := range ve.Causes {
			collectLeaves(c, &leaves)
		}
		if len(leaves) > 0 {
			msg = cs.leafMessage(leaves[0], keyName(k.Property))
		}
		return []finding{{Problem: Problem{Path: keyPath(path, k.Property), Message: msg}, atKey: true}}, func() { delete(obj, k.Property) }
	case *kind.Required:
		return one(fmt.Sprintf("missing %s; add it (see the schema's description of this object)", strings.Join(quoteAll(k.Missing), " and ")))
	case *kind.UniqueItems:
		i, j := k.Duplicates[0], k.Duplicates[1]
		arr, _ := got.([]any)
		return []finding{{Problem: Problem{
				Path:    indexPath(path, j),
				Message: fmt.Sprintf("%s is already listed at index %d; list each value once", display(arr[j]), i),
			}}}, func() {
				arr[j] = nil
			}
	case *kind.MinProperties, *kind.MaxProperties:
		obj, _ := got.(map[string]any)
		allowed := quoteAll(slices.Sorted(maps.Keys(mapAt(node, "properties"))))
		have := quoteAll(slices.Sorted(maps.Keys(obj)))
		exactlyOne := numberAt(node, "maxProperties") == int64(1) && numberAt(node, "minProperties") == int64(1)
		var msg string
		switch {
		case len(obj) == 0 && exactlyOne:
			msg = "got an empty object, expected exactly one of " + orList(allowed)
		case len(obj) == 0:
			msg = "got an empty object, expected at least one of " + orList(allowed) + "; omit the object to use the default"
		case exactlyOne:
			msg = "got both " + andList(have) + ", expected exactly one of them"
		default:
			msg = fmt.Sprintf("got %d keys (%s), expected at most %v", len(obj), strings.Join(have, ", "), numberAt(node, "maxProperties"))
		}
		return one(msg)
	}
	return one(cs.leafMessage(ve, got))
}

// leafMessage describes a failure of a single value, which for a key
// check is the key itself.
func (cs *compiledSchema) leafMessage(ve *jsonschema.ValidationError, got any) string {
	node := cs.node(ve.SchemaURL)
	title, _ := node["title"].(string)
	switch k := ve.ErrorKind.(type) {
	case *kind.Type:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = typeNoun(w)
		}
		if title != "" && len(ve.InstanceLocation) > 0 {
			want = []string{"a " + title}
		}
		return fmt.Sprintf("got %s, expected %s", describe(got), strings.Join(want, " or "))
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = display(w)
		}
		return fmt.Sprintf("got %s, expected one of %s", display(got), strings.Join(want, ", "))
	case *kind.Format:
		if k.Err != nil {
			// The checks phrase their errors as "got VALUE, expected ...".
			msg := k.Err.Error()
			if _, isKey := got.(keyName); isKey && strings.HasPrefix(msg, "got ") {
				msg = "got key " + strings.TrimPrefix(msg, "got ")
			}
			return msg
		}
	case *kind.Pattern:
		if m, ok := node["patternErrorMessage"].(string); ok {
			return fmt.Sprintf("got %s, %s", display(got), lowerFirst(strings.TrimSuffix(m, ".")))
		}
		return fmt.Sprintf("got %s, expected a string matching %s", display(got), k.Want)
	case *kind.MinLength:
		if got == "" || got == keyName("") {
			return fmt.Sprintf("got %s, expected a non-empty string", describe(got))
		}
		return fmt.Sprintf("got %s, expected at least %d characters", display(got), k.Want)
	case *kind.MinItems:
		if n, ok := got.([]any); ok && len(n) == 0 {
			return fmt.Sprintf("got an empty list, expected at least %d entry; omit the key instead to use the default", k.Want)
		}
		return fmt.Sprintf("got %s, expected at least %d entries", describe(got), k.Want)
	case *kind.Minimum, *kind.Maximum:
		noun := "a number"
		if title != "" {
			noun = "a " + title
		}
		return fmt.Sprintf("got %s, expected %s from %v to %v", display(got), noun, numberAt(node, "minimum"), numberAt(node, "maximum"))
	}
	return fmt.Sprintf("got %s, which breaks the schema's %q rule", describe(got), strings.Join(ve.ErrorKind.KeywordPath(), "/"))
}

func typeNoun(t string) string {
	switch t {
	case "boolean":
		return "true or false"
	case "integer":
		return "a whole number"
	case "number":
		return "a number"
	case "string":
		return "a string"
	case "array":
		return "a list [...]"
	case "object":
		return "an object {...}"
	case "null":
		return "null"
	}
	return t
}

// keyName marks an object key checked as a value, so messages call it a
// key.
type keyName string

// describe names a value's type and, for short values, the value itself.
func describe(v any) string {
	switch v := v.(type) {
	case keyName:
		return display(v)
	case nil:
		return "null"
	case bool:
		return "boolean " + strconv.FormatBool(v)
	case json.Number:
		return "number " + v.String()
	case string:
		return "string " + display(v)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprint(v)
}

// display renders a JSON value compactly, shortening long strings.
func display(v any) string {
	if k, ok := v.(keyName); ok {
		return "key " + display(string(k))
	}
	if s, ok := v.(string); ok && len(s) > 60 {
		v = s[:57] + "..."
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

func orList(ss []string) string  { return joinLast(ss, "or") }
func andList(ss []string) string { return joinLast(ss, "and") }

func joinLast(ss []string, word string) string {
	if len(ss) <= 1 {
		return strings.Join(ss, "")
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " " + word + " " + ss[len(ss)-1]
}

func lowerFirst(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return s
	}
	return string(s[0]+'a'-'A') + s[1:]
}

// unknownKeyMessage names the unknown key, suggests the key that was
// probably meant, and lists what is allowed.
func unknownKeyMessage(name string, allowed []string) string {
	msg := fmt.Sprintf("unknown key %q", name)
	if s := suggest(name, allowed); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	if len(allowed) == 0 {
		return msg + "; this object takes no keys"
	}
	return msg + "; expected one of " + strings.Join(quoteAll(allowed), ", ")
}

// suggest returns the allowed key closest to name when it is close enough
// to be a typo: the same up to case, or at most two edits away.
func suggest(name string, allowed []string) string {
	best, bestDist := "", 3
	for _, a := range allowed {
		if strings.EqualFold(a, name) {
			return a
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(a)); d < bestDist && d < len(a) {
			best, bestDist = a, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// node returns the raw schema object at a schema location such as
// "urn:remocal:config.schema.json#/properties/target".
func (cs *compiledSchema) node(loc string) map[string]any {
	_, frag, _ := strings.Cut(loc, "#")
	if f, err := url.PathUnescape(frag); err == nil {
		frag = f
	}
	cur := cs.raw
	for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := cur.(type) {
		case map[string]any:
			cur = c[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	m, _ := cur.(map[string]any)
	return m
}

func mapAt(node map[string]any, key string) map[string]any {
	m, _ := node[key].(map[string]any)
	return m
}

func numberAt(node map[string]any, key string) any {
	if n, ok := node[key].(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			return i
		}
		return n.String()
	}
	return nil
}

// instanceFromSchema turns a schema location made only of "properties"
// steps, such as "#/properties/env/properties/override/propertyNames", into
// the instance location it validates.
func instanceFromSchema(loc string) ([]string, bool) {
	_, frag, _ := strings.Cut(loc, "#")
	if f, err := url.PathUnescape(frag); err == nil {
		frag = f
	}
	toks := strings.Split(strings.TrimPrefix(frag, "/"), "/")
	if len(toks) == 0 || toks[len(toks)-1] != "propertyNames" || len(toks)%2 != 1 {
		return nil, false
	}
	var out []string
	for i := 0; i+1 < len(toks); i += 2 {
		if toks[i] != "properties" {
			return nil, false
		}
		out = append(out, strings.NewReplacer("~1", "/", "~0", "~").Replace(toks[i+1]))
	}
	return out, true
}

// locateInstance follows a validator instance location through doc and
// returns the containing value, the JSON path and the value itself.
func locateInstance(doc any, loc []string) (parent any, path string, v any) {
	path, v = "$", doc
	for _, tok := range loc {
		parent = v
		switch c := v.(type) {
		case map[string]any:
			path, v = keyPath(path, tok), c[tok]
		case []any:
			i, _ := strconv.Atoi(tok)
			path = indexPath(path, i)
			if i >= 0 && i < len(c) {
				v = c[i]
			} else {
				v = nil
			}
		default:
			return nil, path, nil
		}
	}
	return parent, path, v
}

// remove drops the member tok of parent: deleted from an object, set to
// null in a list so later indexes keep their meaning.
func remove(parent any, tok string) {
	switch c := parent.(type) {
	case map[string]any:
		delete(c, tok)
	case []any:
		if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(c) {
			c[i] = nil
		}
	}
}
