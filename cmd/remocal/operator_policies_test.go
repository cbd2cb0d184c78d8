package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/protocol/operator"
)

func TestWritePolicies(t *testing.T) {
	var out bytes.Buffer
	targets := []operator.Target{
		{Spec: operator.TargetSpec{Kind: "deployment", Name: "inventory"}, Status: operator.TargetStatus{Policies: []operator.AppliedPolicy{
			{Kind: "RemocalClusterPolicy", Name: "no-mirror", Rules: []string{"incoming: no mirror"}},
			{Kind: "RemocalPolicy", Namespace: "shop", Name: "own-header", Rules: []string{`incoming: a steal must filter on header X-User = "{{user}}"`}},
		}}},
		{Spec: operator.TargetSpec{Kind: "pod", Name: "web-1"}},
	}
	if err := writePolicies(&out, "shop", targets); err != nil {
		t.Fatal(err)
	}
	want := `deployment/inventory (namespace shop):
  RemocalClusterPolicy no-mirror
    incoming: no mirror
  RemocalPolicy shop/own-header
    incoming: a steal must filter on header X-User = "{{user}}"

pod/web-1 (namespace shop): no policy applies; sessions may steal, mirror, and reach anything the pod reaches
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestOperatorStatusShowsTargetsAndDenials(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	st := operator.OperatorState{Version: "0.3.0", Leader: "op-1", Self: "op-1", Healthy: true, Sessions: 2,
		Targets: []operator.TargetSessions{{Namespace: "shop", Target: "deployment/inventory", Sessions: 2, Users: []string{"alice", "bob"}}},
		RecentDenials: []operator.Denial{{Time: metav1.NewTime(now.Add(-3 * time.Minute)), User: "bob", Namespace: "shop",
			Target: "deployment/inventory", What: "steal port 8080", Policy: "RemocalPolicy shop/own-header", Rule: "incoming.requireHeader"}}}
	var out bytes.Buffer
	if err := writeOperatorStatus(&out, "remocal", st, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"leader:", "op-1", "NAMESPACE  TARGET                SESSIONS  USERS", "shop       deployment/inventory  2         alice,bob",
		"recent policy denials:", "3m ago  bob  shop/deployment/inventory  steal port 8080: RemocalPolicy shop/own-header, rule incoming.requireHeader"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}
