package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/policy"
	"github.com/remocal/remocal/protocol/wire"
)

// Actions an audit record describes.
const (
	ActionConnect      = "connect"
	ActionSubscribe    = "subscribe"
	ActionOverride     = "override"
	ActionKill         = "kill"
	ActionPolicyDenial = "policy-denial"
	ActionSessionEnd   = "session-end"
	ActionQueueSplit   = "queue-split"
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

// recordSplit audits a queue.split request and its answer.
func (s *session) recordSplit(m *wire.QueueSplit, err error) {
	what := fmt.Sprintf("%s queue %s/%s", modeOr(m.Mode), m.Consumer, m.Queue)
	if m.Filter != nil {
		what += fmt.Sprintf(" headers %v body %v", m.Filter.Headers, m.Filter.Body)
	}
	r := Record{Action: ActionQueueSplit, What: what, Decision: DecisionAllow}
	var we *wire.Error
	if errors.As(err, &we) {
		r.Decision, r.Reason, r.Conflict = DecisionDeny, we.Message, we.Code == wire.CodeConflict
	} else if err != nil {
		r.Decision, r.Reason = DecisionDeny, err.Error()
	}
	s.record(r)
}

func modeOr(mode string) string {
	if mode == "" {
		return "mirror"
	}
	return mode
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
