package config

import (
	"encoding/json"
	"fmt"
	"maps"
)

// Overlay returns base with overrides, a partial configuration shaped like
// the file, merged over it: objects key by key, any other value (lists
// included) replaced. IDEs use it for what a launch configuration says
// about its own session. overrides is validated like a file first; the
// error is then an *Error whose Source is source and whose problems carry
// JSON paths but no positions (the overrides came as JSON values, not as
// a file the user could open).
func Overlay(base *Config, overrides map[string]any, source string) (*Config, error) {
	if len(overrides) == 0 {
		return base, nil
	}
	raw, err := json.Marshal(overrides)
	if err != nil {
		return nil, fmt.Errorf("encode the overrides: %w", err)
	}
	if _, err := Parse(raw, source); err != nil {
		return nil, withoutPositions(err)
	}
	var doc map[string]any
	if base != nil {
		b, err := json.Marshal(base)
		if err != nil {
			return nil, fmt.Errorf("encode the configuration: %w", err)
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("decode the configuration: %w", err)
		}
	}
	merged, err := json.Marshal(mergeObjects(doc, overrides))
	if err != nil {
		return nil, fmt.Errorf("encode the merged configuration: %w", err)
	}
	// Each part is valid alone; together they can still break a rule
	// that spans settings, which Parse reports.
	c, err := Parse(merged, source+" merged over the file")
	if err != nil {
		return nil, withoutPositions(err)
	}
	return c, nil
}

// mergeObjects returns base with over merged in; neither is modified.
func mergeObjects(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range over {
		bo, baseIsObject := out[k].(map[string]any)
		oo, overIsObject := v.(map[string]any)
		if baseIsObject && overIsObject {
			out[k] = mergeObjects(bo, oo)
			continue
		}
		out[k] = v
	}
	return out
}

func withoutPositions(err error) error {
	e, ok := err.(*Error)
	if !ok {
		return err
	}
	for i := range e.Problems {
		e.Problems[i].Line, e.Problems[i].Column = 0, 0
	}
	return e
}
