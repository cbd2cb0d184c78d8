package config

import (
	"errors"
	"testing"
)

func TestOverlayMergesObjectsAndReplacesValues(t *testing.T) {
	base, err := Parse([]byte(`{"target":"pid/1","network":{"incoming":{"mode":"mirror","ports":[80,81]},"dns":{"enabled":false}},"fs":{"remote":["/etc"]}}`), "f")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Overlay(base, map[string]any{
		"network": map[string]any{"incoming": map[string]any{"mode": "steal", "ports": []any{8080},
			"httpFilter": map[string]any{"headers": map[string]any{"X-User": "alice"}}}},
	}, "overrides")
	if err != nil {
		t.Fatal(err)
	}
	in := got.Network.Incoming
	if in.Mode != IncomingSteal || len(in.Ports) != 1 || in.Ports[0] != 8080 || in.HTTPFilter == nil || in.HTTPFilter.Headers["X-User"] != "alice" {
		t.Errorf("incoming = %+v, want steal on [8080] with the filter", in)
	}
	if got.Target != "pid/1" || got.Network.DNS.Enabled == nil || *got.Network.DNS.Enabled || len(got.FS.Remote) != 1 {
		t.Errorf("settings the overrides do not name changed: %+v", got)
	}
	if base.Network.Incoming.Mode != IncomingMirror {
		t.Errorf("the base was modified: %+v", base.Network.Incoming)
	}
}

func TestOverlayWithoutBase(t *testing.T) {
	got, err := Overlay(&Config{}, map[string]any{"target": "deployment/api"}, "overrides")
	if err != nil || got.Target != "deployment/api" {
		t.Fatalf("Overlay = %+v, %v", got, err)
	}
}

func TestOverlayRejectsInvalidOverrides(t *testing.T) {
	_, err := Overlay(&Config{}, map[string]any{"network": map[string]any{"incoming": map[string]any{"mode": "copy"}}, "nope": 1}, "overrides")
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *Error", err)
	}
	paths := map[string]bool{}
	for _, p := range ce.Problems {
		paths[p.Path] = true
		if p.Line != 0 || p.Column != 0 {
			t.Errorf("problem %v has a position in JSON the user never saw", p)
		}
	}
	if !paths["$.network.incoming.mode"] || !paths["$.nope"] || ce.Source != "overrides" {
		t.Errorf("problems = %+v (source %q), want $.network.incoming.mode and $.nope from overrides", ce.Problems, ce.Source)
	}
}
