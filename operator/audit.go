package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/remocal/remocal/operator/internal/broker"
	"github.com/remocal/remocal/protocol/policy"
)

// AuditLine is one audit record as the operator writes it, a JSON line on
// its standard output (docs/operator.md, Audit): who, from where, what,
// on which target, the decision and why.
type AuditLine struct {
	Time time.Time `json:"time"`
	// Audit is always "remocal", to tell these lines from others.
	Audit     string      `json:"audit"`
	Action    string      `json:"action"`
	User      string      `json:"user"`
	Groups    []string    `json:"groups,omitempty"`
	From      AuditClient `json:"from"`
	Namespace string      `json:"namespace"`
	// Target as users write it: "deployment/api".
	Target   string      `json:"target"`
	Session  string      `json:"session,omitempty"`
	What     string      `json:"what,omitempty"`
	Decision string      `json:"decision"`
	Reason   string      `json:"reason,omitempty"`
	Policy   *policy.Ref `json:"policy,omitempty"`
	Rule     string      `json:"rule,omitempty"`
	// Seconds is a session's length, for session-end.
	Seconds float64 `json:"seconds,omitempty"`
}

// AuditClient is where a request came from: the client as it described
// itself (the operator sees connections from the kube-apiserver only).
type AuditClient struct {
	Client  string `json:"client,omitempty"`
	Host    string `json:"host,omitempty"`
	Tool    string `json:"tool,omitempty"`
	Version string `json:"version,omitempty"`
}

// auditor writes the broker's records as JSON lines, as Kubernetes
// Events on their targets (for what a target's owner should see), and
// into the metrics and usage.
type auditor struct {
	log     *slog.Logger
	cs      kubernetes.Interface
	metrics *metrics
	usage   *usage

	mu  sync.Mutex
	out io.Writer

	events chan *corev1.Event
	wg     sync.WaitGroup
}

// eventQueue bounds the Events waiting to be written: a burst beyond it
// is dropped (and logged) rather than slow sessions down.
const eventQueue = 256

func newAuditor(out io.Writer, cs kubernetes.Interface, log *slog.Logger, m *metrics, u *usage) *auditor {
	return &auditor{out: out, cs: cs, log: log, metrics: m, usage: u, events: make(chan *corev1.Event, eventQueue)}
}

// run writes Events until ctx ends; wait joins it.
func (a *auditor) run(ctx context.Context) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-a.events:
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				if _, err := a.cs.CoreV1().Events(ev.Namespace).Create(wctx, ev, metav1.CreateOptions{}); err != nil {
					a.log.Warn("write an event on a target", "target", ev.InvolvedObject.Name, "reason", ev.Reason, "err", err)
				}
				cancel()
			}
		}
	}()
}

func (a *auditor) wait() { a.wg.Wait() }

// Record implements broker.Auditor.
func (a *auditor) Record(r broker.Record) {
	line := AuditLine{Time: r.Time.UTC(), Audit: "remocal", Action: r.Action, User: r.User.Username, Groups: r.User.Groups,
		From:      AuditClient{Client: r.From.Name, Host: r.From.Host, Tool: r.From.Tool, Version: r.From.Version},
		Namespace: r.Namespace, Target: targetRef(r.Target), Session: r.Session, What: r.What, Decision: r.Decision,
		Reason: r.Reason, Policy: r.Policy, Rule: r.Rule, Seconds: r.Duration.Seconds()}
	b, err := json.Marshal(line)
	if err == nil {
		a.mu.Lock()
		a.out.Write(append(b, '\n'))
		a.mu.Unlock()
	}
	if a.metrics != nil {
		a.metrics.record(r)
	}
	if a.usage != nil {
		a.usage.record(r)
	}
	if ev := targetEvent(r); ev != nil {
		select {
		case a.events <- ev:
		default:
			a.log.Warn("too many events waiting; one is dropped", "target", r.Target, "reason", ev.Reason)
		}
	}
}

// targetRef turns "deployment.api" into "deployment/api".
func targetRef(target string) string {
	kind, name, ok := strings.Cut(target, ".")
	if !ok {
		return target
	}
	return kind + "/" + name
}

// involvedKinds maps remocal's kinds to the objects Events are about.
var involvedKinds = map[string][2]string{
	"pod": {"v1", "Pod"}, "service": {"v1", "Service"},
	"deployment": {"apps/v1", "Deployment"}, "statefulset": {"apps/v1", "StatefulSet"}, "replicaset": {"apps/v1", "ReplicaSet"},
	"job": {"batch/v1", "Job"}, "cronjob": {"batch/v1", "CronJob"},
}

// eventSeq numbers the Events this operator writes.
var eventSeq atomic.Uint64

// Event reasons on targets.
const (
	EventSessionStarted = "RemocalSessionStarted"
	EventSessionEnded   = "RemocalSessionEnded"
	EventPolicyDenied   = "RemocalPolicyDenied"
	EventOverride       = "RemocalOverride"
	EventSessionKilled  = "RemocalSessionKilled"
)

// targetEvent is the Event a target's owner sees for r, or nil: sessions
// starting and ending, overrides, kills and policy denials, not every
// subscription.
func targetEvent(r broker.Record) *corev1.Event {
	kind, name, ok := strings.Cut(r.Target, ".")
	k, known := involvedKinds[kind]
	if !ok || !known {
		return nil
	}
	typ, reason, msg := corev1.EventTypeNormal, "", ""
	who := r.User.Username
	if r.From.Name != "" {
		who += " (" + r.From.Name + ")"
	}
	switch {
	case r.Action == broker.ActionConnect && r.Decision == broker.DecisionAllow:
		reason, msg = EventSessionStarted, fmt.Sprintf("%s started remocal session %s", who, r.Session)
	case r.Action == broker.ActionSessionEnd:
		reason, msg = EventSessionEnded, fmt.Sprintf("remocal session %s of %s ended after %s: %s", r.Session, who, r.Duration.Round(time.Second), r.Reason)
	case r.Action == broker.ActionPolicyDenial:
		typ, reason = corev1.EventTypeWarning, EventPolicyDenied
		msg = fmt.Sprintf("%s: %s %s by %s (rule %s): %s", who, r.What, verb(r.Decision), r.Policy, r.Rule, r.Reason)
	case r.Action == broker.ActionOverride && r.Decision == broker.DecisionAllow:
		typ, reason, msg = corev1.EventTypeWarning, EventOverride, fmt.Sprintf("%s took over %s (onConflict: override) in session %s", who, r.What, r.Session)
	case r.Action == broker.ActionKill:
		reason, msg = EventSessionKilled, fmt.Sprintf("remocal session %s (%s) was deleted: %s", r.Session, r.What, r.Reason)
	default:
		return nil
	}
	now := metav1.NewTime(r.Time)
	return &corev1.Event{
		// Named as kubectl's events are (object.timestamp), with a
		// sequence number so that events in one nanosecond differ.
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.remocal.%x.%d", truncate(name, 200), time.Now().UnixNano(), eventSeq.Add(1)),
			Namespace: r.Namespace},
		InvolvedObject: corev1.ObjectReference{APIVersion: k[0], Kind: k[1], Name: name, Namespace: r.Namespace},
		Reason:         reason, Message: truncate(msg, 1024), Type: typ,
		Source:         corev1.EventSource{Component: "remocal-operator"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "remocal.dev/operator", ReportingInstance: "remocal-operator",
	}
}

func verb(decision string) string {
	if decision == broker.DecisionRevoke {
		return "revoked"
	}
	return "denied"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
