package session

import (
	"fmt"
	"strings"

	"github.com/remocal/remocal/interpose/internal/supervisor"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/wire"
)

// A session that reconnects may reach the agent of another pod: a
// Kubernetes target whose pod was replaced is followed to the new one.
// Files, DNS and connections go to the new pod from then on, but what
// programs took at start does not change under them: the environment the
// launcher gave them and the hostname the supervisor reports (a process in
// a pod keeps its pod's name too). Only a restart refreshes those, which
// the user is told, with what exactly is stale.

// Kept lists what programs of this session took from the target at start
// and keep for as long as they run (daemon.KeptEnv, daemon.KeptHostname).
func (s *Session) Kept() []string {
	var kept []string
	if len(s.remote) > 0 {
		kept = append(kept, daemon.KeptEnv)
	}
	if s.host != "" {
		kept = append(kept, daemon.KeptHostname)
	}
	return kept
}

// moved is a reconnection: the target processes the agents served before
// and after, and what the connector called the target then and now.
type moved struct {
	before, after      wire.TargetInfo
	wasNamed, nowNamed string
}

// reportMoved tells the user, when the agent reached after a reconnection
// serves another target process than before, what the running programs
// keep from the old one.
func (s *Session) reportMoved(m moved) {
	if m.before == m.after {
		return
	}
	kept := s.Kept()
	if len(kept) == 0 {
		return
	}
	s.report(supervisor.Event{Kind: daemon.EventTargetMoved, Message: movedMessage(m, kept)})
}

func movedMessage(m moved, kept []string) string {
	var what []string
	for _, k := range kept {
		switch k {
		case daemon.KeptEnv:
			what = append(what, "environment variables")
		case daemon.KeptHostname:
			what = append(what, fmt.Sprintf("hostname (%s)", m.before.Hostname))
		}
	}
	// The connector's names ("deployment/api (pod shop/api-x2x, ...)")
	// say more than the agent's, when they tell the two apart.
	now, was := m.nowNamed, m.wasNamed
	if now == was {
		now, was = describeTarget(m.after), describeTarget(m.before)
	}
	return fmt.Sprintf("the target is now %s, not %s: files, DNS and connections go to the new one, but programs "+
		"already running keep the old one's %s; restart them to take the new one's", now, was, strings.Join(what, " and "))
}

func describeTarget(t wire.TargetInfo) string {
	if t.Hostname != "" {
		return fmt.Sprintf("%s (host %s, pid %d)", t.Name, t.Hostname, t.PID)
	}
	return fmt.Sprintf("%s (pid %d)", t.Name, t.PID)
}
