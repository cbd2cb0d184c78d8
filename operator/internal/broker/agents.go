package broker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
)

// Pod is one ready pod of a target.
type Pod struct {
	Namespace, Name string
	// Created is when the pod started: the primary is the oldest.
	Created time.Time
}

func (p Pod) key() string { return p.Namespace + "/" + p.Name }

// Agents is where the broker's agents come from: the cluster
// implementation (package operator/internal/agents) creates one agent Job
// per target pod and dials it over TLS; tests serve local processes with
// in-process agents.
type Agents interface {
	// Pods follows the ready pods of target (its object name,
	// "deployment.api") in namespace: the first value on the channel is
	// the current set, then one per change; the channel is closed when
	// ctx ends. An unknown target is backend.ErrNotFound.
	Pods(ctx context.Context, namespace, target string) (<-chan []Pod, error)
	// Dial connects to pod's agent, creating the agent if needed. The
	// broker shares the connection among every session on the pod.
	Dial(ctx context.Context, pod Pod) (*agentclient.Client, error)
	// Idle says the broker closed its connection to pod's agent, having
	// no session on the pod for its idle TTL: the agent may go.
	Idle(pod Pod)
}

// pool holds one agent connection per pod, shared by the sessions on it,
// counted by references and closed after an idle TTL without any.
type pool struct {
	agents  Agents
	idleTTL time.Duration
	// ctx bounds dials, which outlive the request that started them
	// (the connection is shared).
	ctx context.Context

	// lost is called (on a goroutine of the pool's) when the connection
	// to pod's agent ends while sessions hold it, so that they subscribe
	// again through a new one.
	lost func(Pod)

	mu      sync.Mutex
	entries map[string]*poolEntry
	closed  bool
	// wg joins dials, loss watchers and idle expiries.
	wg sync.WaitGroup
}

type poolEntry struct {
	pod   Pod
	ready chan struct{} // closed when the dial ended
	// client and err are set before ready is closed.
	client *agentclient.Client
	err    error
	refs   int
	idle   *time.Timer
	// idleSince is when refs dropped to 0.
	idleSince time.Time
}

// acquire returns pod's agent connection, dialling it if there is none (or
// it died), and counts a reference the caller gives back with release.
func (p *pool) acquire(ctx context.Context, pod Pod) (*agentclient.Client, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("the operator is stopping")
	}
	e := p.entries[pod.key()]
	refs := 0
	if e != nil && e.dead() {
		// Its holders hold the new connection in its stead.
		refs = e.refs
		delete(p.entries, pod.key())
		e = nil
	}
	if e == nil {
		e = &poolEntry{pod: pod, ready: make(chan struct{}), refs: refs}
		p.entries[pod.key()] = e
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.dial(e)
		}()
	}
	e.refs++
	if e.idle != nil {
		e.idle.Stop()
		e.idle = nil
	}
	p.mu.Unlock()
	select {
	case <-e.ready:
	case <-ctx.Done():
		p.release(pod)
		return nil, ctx.Err()
	}
	if e.err != nil {
		p.release(pod)
		return nil, e.err
	}
	return e.client, nil
}

// dead reports whether an entry's dial failed or its connection ended.
func (e *poolEntry) dead() bool {
	select {
	case <-e.ready:
	default:
		return false
	}
	if e.err != nil {
		return true
	}
	select {
	case <-e.client.Done():
		return true
	default:
		return false
	}
}

func (p *pool) dial(e *poolEntry) {
	ctx, cancel := context.WithTimeout(p.ctx, 3*time.Minute)
	defer cancel()
	c, err := p.agents.Dial(ctx, e.pod)
	if err != nil {
		err = fmt.Errorf("reach the agent of pod %s: %w", e.pod.key(), err)
	}
	e.client, e.err = c, err
	close(e.ready)
	if err != nil {
		return
	}
	select {
	case <-c.Done():
	case <-p.ctx.Done():
		return
	}
	p.mu.Lock()
	current := p.entries[e.pod.key()] == e && e.refs > 0 && !p.closed
	p.mu.Unlock()
	if current && p.lost != nil {
		p.lost(e.pod)
	}
}

// release gives back a reference; the last one starts the idle timer.
func (p *pool) release(pod Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entries[pod.key()]
	if e == nil || e.refs == 0 {
		return
	}
	e.refs--
	if e.refs > 0 || p.closed {
		return
	}
	e.idleSince = time.Now()
	e.idle = time.AfterFunc(p.idleTTL, func() { p.expire(e) })
}

// expire closes an entry still idle when its timer fired.
func (p *pool) expire(e *poolEntry) {
	p.mu.Lock()
	if p.entries[e.pod.key()] != e || e.refs > 0 || p.closed {
		p.mu.Unlock()
		return
	}
	delete(p.entries, e.pod.key())
	p.wg.Add(1)
	defer p.wg.Done()
	p.mu.Unlock()
	<-e.ready
	if e.client != nil {
		e.client.Close()
	}
	p.agents.Idle(e.pod)
}

// snapshot lists the pool's entries for the operator's status.
func (p *pool) snapshot() []poolEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]poolEntry, 0, len(p.entries))
	for _, e := range p.entries {
		snap := poolEntry{pod: e.pod, refs: e.refs, idleSince: e.idleSince}
		select {
		case <-e.ready:
			snap.err = e.err
		default:
		}
		out = append(out, snap)
	}
	slices.SortFunc(out, func(a, b poolEntry) int {
		if a.pod.key() < b.pod.key() {
			return -1
		}
		return 1
	})
	return out
}

// close ends every connection; the caller has ended every session.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	entries := p.entries
	p.entries = map[string]*poolEntry{}
	p.mu.Unlock()
	for _, e := range entries {
		if e.idle != nil {
			e.idle.Stop()
		}
		<-e.ready
		if e.client != nil {
			e.client.Close()
		}
	}
	p.wg.Wait()
}
