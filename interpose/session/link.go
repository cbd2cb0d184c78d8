package session

import (
	"fmt"
	"time"

	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/interpose/internal/supervisor"
	"github.com/remocal/remocal/protocol/daemon"
)

// reconnectPatience is how long a dropped connection is tried again before
// the session gives up on the agent. A port-forward drops when the
// apiserver or kubelet restarts or the laptop changes networks; both are
// over in seconds.
const reconnectPatience = 45 * time.Second

// link watches the agent connection for the session's lifetime. When it
// drops, every supervisor is told (remote files and connections fail until
// it is back), the user is told, and a connector that can reach the same
// agent again does so; incoming traffic is then asked for again.
func (s *Session) link() {
	redialer, canRedial := s.opts.Connector.(connect.Redialer)
	for {
		c := s.Client()
		select {
		case <-c.Done():
		case <-s.ctx.Done():
			return
		}
		if s.ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		sups := append([]*supervisor.Supervisor(nil), s.supervisors...)
		s.mu.Unlock()
		for _, sup := range sups {
			sup.AgentLost()
		}
		effect := "remote files now fail with EIO and connections through the target with ENETUNREACH"
		peer := s.peer()
		if !canRedial {
			s.report(supervisor.Event{Kind: daemon.EventAgentLost, Err: c.Err(), Message: fmt.Sprintf(
				"lost the connection to %s (%v); programs keep running, but %s", peer, c.Err(), effect)})
			return
		}
		s.report(supervisor.Event{Kind: daemon.EventAgentLost, Err: c.Err(), Message: fmt.Sprintf(
			"lost the connection to %s (%v); reconnecting, and until then %s", peer, c.Err(), effect)})
		started, was := time.Now(), s.opts.Connector.Describe()
		next, release, err := redialer.Redial(s.ctx, s.clientOpts, reconnectPatience)
		if s.ctx.Err() != nil {
			if err == nil {
				release()
			}
			return
		}
		if err != nil {
			s.report(supervisor.Event{Kind: daemon.EventAgentGone, Err: err, Message: fmt.Sprintf(
				"could not reconnect to %s: %v; programs keep running without the target (restart the session for a new agent)", peer, err)})
			return
		}
		s.mu.Lock()
		old := s.release
		s.client, s.release = next, release
		sups = append([]*supervisor.Supervisor(nil), s.supervisors...)
		s.mu.Unlock()
		old()
		for _, sup := range sups {
			sup.Reconnected(next)
		}
		s.report(supervisor.Event{Kind: daemon.EventAgentReconnected, Message: fmt.Sprintf(
			"reconnected to %s after %v", s.peer(), time.Since(started).Round(10*time.Millisecond))})
		s.reportMoved(moved{c.Welcome().Target, next.Welcome().Target, was, s.opts.Connector.Describe()}) // moved.go
	}
}

// peer names what the session's connection reaches.
func (s *Session) peer() string {
	if p, ok := s.opts.Connector.(connect.Peer); ok {
		if name := p.Peer(); name != "" {
			return name
		}
	}
	return "the agent"
}

// report tells the user and, as data, OnEvent.
func (s *Session) report(ev supervisor.Event) {
	fmt.Fprintf(s.opts.Stderr, "remocal: %s\n", ev.Message)
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(ev)
	}
}
