// Package targets lists what sessions can run in. Providers keep their own
// caches (a /proc scan for local processes; informers for Kubernetes), so
// that listing is answered from memory however large the cluster, and tell
// the daemon when their lists change.
package targets

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/remocal/remocal/protocol/daemon"
)

// Provider is a source of targets.
type Provider interface {
	// Name identifies the provider in targets and notifications.
	Name() string
	// Namespaces and Targets answer from the provider's cache.
	Namespaces() []daemon.Namespace
	Targets() []daemon.Target
	// Changed receives a value whenever the lists changed. It is closed
	// when the provider stops.
	Changed() <-chan daemon.TargetsChanged
	Close() error
}

// Set is the daemon's view over all providers.
type Set struct {
	providers []Provider
	changed   chan daemon.TargetsChanged
	wg        sync.WaitGroup
}

// NewSet merges providers' change notifications into one channel.
func NewSet(providers ...Provider) *Set {
	s := &Set{providers: providers, changed: make(chan daemon.TargetsChanged, 16)}
	for _, p := range providers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for c := range p.Changed() {
				select {
				case s.changed <- c:
				default: // a notification is already pending; it says enough
				}
			}
		}()
	}
	return s
}

// Changed receives the providers' change notifications.
func (s *Set) Changed() <-chan daemon.TargetsChanged { return s.changed }

// Namespaces lists every provider's namespaces.
func (s *Set) Namespaces() []daemon.Namespace {
	var out []daemon.Namespace
	for _, p := range s.providers {
		out = append(out, p.Namespaces()...)
	}
	return out
}

// List returns targets matching the filter, sorted by namespace then ref.
func (s *Set) List(ctx context.Context, p daemon.TargetsParams) []daemon.Target {
	out := []daemon.Target{}
	for _, prov := range s.providers {
		for _, t := range prov.Targets() {
			if p.Namespace != "" && t.Namespace != p.Namespace {
				continue
			}
			if len(p.Kinds) > 0 && !slices.Contains(p.Kinds, t.Kind) {
				continue
			}
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b daemon.Target) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Ref, b.Ref)
	})
	return out
}

// Close stops every provider.
func (s *Set) Close() error {
	for _, p := range s.providers {
		p.Close()
	}
	s.wg.Wait()
	return nil
}

// Static is a provider with a fixed list, for tests and benchmarks of the
// daemon's listing path.
type Static struct {
	ProviderName string
	List         []daemon.Target
	changed      chan daemon.TargetsChanged
	once         sync.Once
}

func (s *Static) ch() chan daemon.TargetsChanged {
	s.once.Do(func() { s.changed = make(chan daemon.TargetsChanged) })
	return s.changed
}

func (s *Static) Name() string { return s.ProviderName }
func (s *Static) Namespaces() []daemon.Namespace {
	seen := map[string]bool{}
	var out []daemon.Namespace
	for _, t := range s.List {
		if !seen[t.Namespace] {
			seen[t.Namespace] = true
			out = append(out, daemon.Namespace{Name: t.Namespace, Provider: s.ProviderName})
		}
	}
	return out
}
func (s *Static) Targets() []daemon.Target              { return s.List }
func (s *Static) Changed() <-chan daemon.TargetsChanged { return s.ch() }
func (s *Static) Close() error                          { close(s.ch()); return nil }
