package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/operator/internal/broker"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/policy"
	"github.com/remocal/remocal/test/poll"
)

// The audit output's format and the Events it writes, with a fake
// clientset as the seam; test/e2e/operator's TestPolicies reads both from
// a deployed operator.
func TestAuditLinesEventsAndCounters(t *testing.T) {
	var out bytes.Buffer
	cs := fake.NewClientset()
	m := newMetrics(noSessions{}, noStatus{}, nil)
	u := newUsage()
	a := newAuditor(&out, cs, testLog(t), m, u)
	ctx, cancel := context.WithCancel(context.Background())
	a.run(ctx)
	defer func() {
		cancel()
		a.wait()
	}()
	at := time.Date(2026, 12, 7, 23, 30, 0, 0, time.UTC)
	who := operator.UserInfo{Username: "bob", Groups: []string{"developers"}}
	from := operator.ClientInfo{Name: "bob@laptop", Host: "laptop", Tool: "remocal exec"}
	ref := &policy.Ref{Kind: policy.KindPolicy, Namespace: "shop", Name: "own-header"}
	a.Record(broker.Record{Time: at, Action: broker.ActionConnect, User: who, From: from, Namespace: "shop", Target: "deployment.inventory",
		Session: "s-0123456789", Decision: broker.DecisionAllow, Duration: 40 * time.Millisecond})
	a.Record(broker.Record{Time: at, Action: broker.ActionPolicyDenial, User: who, From: from, Namespace: "shop", Target: "deployment.inventory",
		Session: "s-0123456789", What: "steal port 8080", Decision: broker.DecisionDeny, Reason: "needs a filter", Policy: ref, Rule: policy.RuleRequireHeader})
	a.Record(broker.Record{Time: at.Add(time.Hour), Action: broker.ActionSessionEnd, User: who, From: from, Namespace: "shop", Target: "deployment.inventory",
		Session: "s-0123456789", Decision: broker.DecisionAllow, Reason: "the client said goodbye", Duration: time.Hour})

	var lines []AuditLine
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var al AuditLine
		if err := json.Unmarshal([]byte(l), &al); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		lines = append(lines, al)
	}
	if len(lines) != 3 || lines[1].Audit != "remocal" || lines[1].Action != "policy-denial" || lines[1].User != "bob" ||
		lines[1].From.Client != "bob@laptop" || lines[1].Target != "deployment/inventory" || lines[1].Policy == nil ||
		lines[1].Policy.Name != "own-header" || lines[1].Rule != policy.RuleRequireHeader || lines[2].Seconds != 3600 {
		t.Errorf("audit lines = %+v", lines)
	}

	err := poll.Until(ctx, 10*time.Second, func() error {
		evs, err := cs.CoreV1().Events("shop").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		reasons := map[string]corev1.Event{}
		for _, ev := range evs.Items {
			reasons[ev.Reason] = ev
		}
		d, ok := reasons[EventPolicyDenied]
		if len(evs.Items) != 3 || !ok || d.Type != corev1.EventTypeWarning || d.InvolvedObject.Kind != "Deployment" ||
			d.InvolvedObject.APIVersion != "apps/v1" || d.InvolvedObject.Name != "inventory" ||
			!strings.Contains(d.Message, "RemocalPolicy shop/own-header (rule incoming.requireHeader)") {
			return errorf("events = %+v", evs.Items)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}

	if v := testutil.ToFloat64(m.denials.WithLabelValues("RemocalPolicy shop/own-header", policy.RuleRequireHeader)); v != 1 {
		t.Errorf("policy denials = %v", v)
	}
	if v := testutil.ToFloat64(m.sessionsTotal.WithLabelValues("shop", "deployment", "bob")); v != 1 {
		t.Errorf("sessions total = %v", v)
	}
	// 23:30 to 00:30: half an hour on each day.
	usage, denials := u.report(nil)
	if len(usage) != 2 || usage[0].Day != "2026-12-08" || usage[0].Seconds != 1800 || usage[1].Day != "2026-12-07" ||
		usage[1].Seconds != 1800 || usage[1].Sessions != 1 || len(denials) != 1 || denials[0].Policy != "RemocalPolicy shop/own-header" {
		t.Errorf("usage = %+v, denials = %+v", usage, denials)
	}
}

type noSessions struct{}

func (noSessions) List(string) ([]operator.Session, string)             { return nil, "1" }
func (noSessions) Get(string, string) (operator.Session, bool)          { return operator.Session{}, false }
func (noSessions) Delete(context.Context, string, string, string) error { return nil }
func (noSessions) Watch(context.Context, string, string) (<-chan backend.SessionEvent, error) {
	return nil, nil
}

type noStatus struct{}

func (noStatus) Status(context.Context) operator.OperatorState { return operator.OperatorState{} }

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// Two replicas share the usage through the ConfigMap (a fake clientset as
// the seam; test/e2e/operator's TestSessionSurvivesLeaderDeletion reads
// it from a deployed operator after a failover): what the old leader
// stored, the new one reports and adds to.
func TestUsageOutlivesItsLeader(t *testing.T) {
	ctx := t.Context()
	st := &usageStore{cs: fake.NewClientset(), ns: "remocal"}
	at := time.Now().UTC().Truncate(time.Hour)
	who := operator.UserInfo{Username: "bob"}
	ref := &policy.Ref{Kind: policy.KindPolicy, Namespace: "shop", Name: "no-steal"}
	old, next := newUsage(), newUsage()
	old.record(broker.Record{Time: at, Action: broker.ActionConnect, User: who, Namespace: "shop", Target: "deployment.inventory", Decision: broker.DecisionAllow})
	old.record(broker.Record{Time: at.Add(time.Minute), Action: broker.ActionSessionEnd, User: who, Namespace: "shop", Target: "deployment.inventory", Duration: time.Minute})
	old.record(broker.Record{Time: at, Action: broker.ActionPolicyDenial, User: who, Namespace: "shop", Target: "deployment.inventory", Policy: ref, Rule: policy.RuleBlockSteal})
	if err := old.flush(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := next.flush(ctx, st); err != nil {
		t.Fatal(err)
	}
	next.record(broker.Record{Time: at, Action: broker.ActionConnect, User: who, Namespace: "shop", Target: "deployment.inventory", Decision: broker.DecisionAllow})
	usage, denials := next.report(nil)
	if len(usage) != 1 || usage[0].Sessions != 2 || usage[0].Seconds != 60 || len(denials) != 1 || denials[0].Rule != policy.RuleBlockSteal {
		t.Errorf("the new leader reports %+v, %+v; want 2 sessions, 60 s and the denial", usage, denials)
	}
	if err := next.flush(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := old.flush(ctx, st); err != nil {
		t.Fatal(err)
	}
	if usage, _ := old.report(nil); len(usage) != 1 || usage[0].Sessions != 2 {
		t.Errorf("after both flushed, the old leader reads %+v, want 2 sessions", usage)
	}
	cm, err := st.cs.CoreV1().ConfigMaps("remocal").Get(ctx, UsageConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var state usageState
	if err := json.Unmarshal([]byte(cm.Data[usageDataKey]), &state); err != nil || len(state.Usage) != 1 || state.Usage[0].Sessions != 2 {
		t.Errorf("ConfigMap holds %q (%v)", cm.Data[usageDataKey], err)
	}
}
