package broker

import (
	"context"
	"sync"
)

// feeds share one Agents.Pods watch per target among its sessions: a
// hundred sessions on one Deployment are one watch on the cluster, not a
// hundred.
type feeds struct {
	b  *Broker
	mu sync.Mutex
	m  map[string]*podFeed
}

// podFeed is one target's pods, fanned out to its sessions.
type podFeed struct {
	key    string
	cancel context.CancelFunc

	mu      sync.Mutex
	current []Pod
	have    bool
	subs    map[*podSub]struct{}
}

// podSub is one session's view of a feed: the latest set, newest wins.
type podSub struct {
	ch     chan []Pod // capacity 1
	closed bool       // guarded by podFeed.mu
}

// push replaces the set waiting in the subscriber's channel; feed.mu held.
func (s *podSub) push(pods []Pod) {
	select {
	case <-s.ch:
	default:
	}
	s.ch <- pods
}

// subscribe returns target's pods as a channel (the current set first,
// then each change) and the function that ends the subscription and
// closes the channel.
func (f *feeds) subscribe(ns, target string) (<-chan []Pod, func(), error) {
	key := ns + "/" + target
	f.mu.Lock()
	defer f.mu.Unlock()
	feed := f.m[key]
	if feed == nil {
		ctx, cancel := context.WithCancel(f.b.ctx)
		ch, err := f.b.cfg.Agents.Pods(ctx, ns, target)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		feed = &podFeed{key: key, cancel: cancel, subs: map[*podSub]struct{}{}}
		if !f.b.goTracked(func() { f.run(feed, ch) }) {
			cancel()
			drain(ch)
			return nil, nil, errStopping
		}
		f.m[key] = feed
	}
	sub := &podSub{ch: make(chan []Pod, 1)}
	feed.mu.Lock()
	feed.subs[sub] = struct{}{}
	if feed.have {
		sub.push(feed.current)
	}
	feed.mu.Unlock()
	return sub.ch, func() { f.unsubscribe(feed, sub) }, nil
}

func (f *feeds) unsubscribe(feed *podFeed, sub *podSub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	feed.mu.Lock()
	if !sub.closed {
		sub.closed = true
		close(sub.ch)
	}
	delete(feed.subs, sub)
	last := len(feed.subs) == 0
	feed.mu.Unlock()
	if last && f.m[feed.key] == feed {
		delete(f.m, feed.key)
		feed.cancel()
	}
}

// run fans the watch's sets out until it ends, then closes every
// subscriber's channel.
func (f *feeds) run(feed *podFeed, ch <-chan []Pod) {
	for pods := range ch {
		feed.mu.Lock()
		feed.current, feed.have = pods, true
		for sub := range feed.subs {
			if !sub.closed {
				sub.push(pods)
			}
		}
		feed.mu.Unlock()
	}
	f.mu.Lock()
	if f.m[feed.key] == feed {
		delete(f.m, feed.key)
	}
	f.mu.Unlock()
	feed.mu.Lock()
	for sub := range feed.subs {
		if !sub.closed {
			sub.closed = true
			close(sub.ch)
		}
	}
	feed.mu.Unlock()
	feed.cancel()
}
