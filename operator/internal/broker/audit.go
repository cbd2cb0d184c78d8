package broker

import (
	"time"

	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/policy"
)

// Actions an audit record describes.
const (
	ActionConnect      = "connect"
	ActionSubscribe    = "subscribe"
	ActionOverride     = "override"
	ActionKill         = "kill"
	ActionPolicyDenial = "policy-denial"
	ActionSessionEnd   = "session-end"
)

// Decisions.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
	// DecisionRevoke: something allowed before was taken away (a policy
	// created or changed while the session ran).
	DecisionRevoke = "revoke"
)

// Record is one audit record: who did what to which target, and what the
// operator decided.
type Record struct {
	Time   time.Time
	Action string
	User   operator.UserInfo
	// From is the client as it described itself (name, host, tool).
	From      operator.ClientInfo
	Namespace string
	// Target is the target's object name ("deployment.api").
	Target   string
	Session  string
	What     string
	Decision string
	Reason   string
	Policy   *policy.Ref
	Rule     string
	// Duration is a session's length, for session-end, and the connect
	// latency for connect.
	Duration time.Duration
	// Conflict marks a subscription refused because another session
	// holds the port.
	Conflict bool
}

// Auditor receives the broker's audit records (the operator writes them
// as JSON lines, Kubernetes Events and metrics). Record must not block
// for long: it runs on the request's path.
type Auditor interface {
	Record(Record)
}

// record completes r with the session and hands it to the auditor.
func (s *session) record(r Record) {
	if s.b.cfg.Auditor == nil {
		return
	}
	s.mu.Lock()
	r.From = s.client
	s.mu.Unlock()
	if r.User.Username == "" {
		r.User = s.user
	}
	r.Namespace, r.Target, r.Session = s.ns, s.target, s.name
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	s.b.cfg.Auditor.Record(r)
}
