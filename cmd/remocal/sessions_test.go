package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/protocol/operator"
)

// goldenSessions are the sessions of protocol/testdata/operator, as the
// operator's API encodes them.
func goldenSessions(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../protocol/testdata/operator/session-list.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSessionTable(t *testing.T) {
	var list operator.SessionList
	if err := json.Unmarshal(goldenSessions(t), &list); err != nil {
		t.Fatal(err)
	}
	now := list.Items[0].Status.StartTime.Add(12 * time.Minute)
	var buf bytes.Buffer
	if err := writeSessionTable(&buf, list.Items, false, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if got := strings.Fields(lines[0]); !cmp.Equal(got, []string{"NAME", "USER", "TARGET", "PORTS/LOCKS", "SINCE", "PHASE"}) {
		t.Errorf("header %q", lines[0])
	}
	if len(lines) != 1+len(list.Items) {
		t.Fatalf("%d lines for %d sessions:\n%s", len(lines), len(list.Items), buf.String())
	}
	row := ""
	for _, l := range lines {
		if strings.HasPrefix(l, "s-4k2m9q7x1b ") {
			row = l
		}
	}
	for _, want := range []string{"alice", "deployment/inventory", `8080 steal (lock) header X-User="alice", 9090 mirror`, "12m ago", "Active"} {
		if !strings.Contains(row, want) {
			t.Errorf("row %q lacks %q\n%s", row, want, buf.String())
		}
	}
	buf.Reset()
	writeSessionTable(&buf, list.Items, true, now)
	if !strings.HasPrefix(buf.String(), "NAMESPACE") || !strings.Contains(buf.String(), "shop") {
		t.Errorf("-A table:\n%s", buf.String())
	}
	buf.Reset()
	writeSessionTable(&buf, nil, false, now)
	if !strings.Contains(buf.String(), "(no sessions)") {
		t.Errorf("empty table:\n%s", buf.String())
	}
	// A disconnected session says how long its locks stay.
	expires := metav1.NewTime(now.Add(90 * time.Second))
	if got := phaseCell(operator.SessionStatus{Phase: operator.PhaseDisconnected, ExpiresAt: &expires}, now); got != "Disconnected (expires in 90s)" {
		t.Errorf("phase %q", got)
	}
}

func TestOperatorStatusOutput(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	idle := metav1.NewTime(now.Add(-3 * time.Minute))
	var buf bytes.Buffer
	writeOperatorStatus(&buf, "dev", operator.OperatorState{Version: "0.3.0", Leader: "op-1", Self: "op-2", Sessions: 2,
		Problems: []string{"agent for shop/api-1 not ready"},
		Agents:   []operator.AgentStatus{{Pod: "shop/api-1", Agent: "remocal/agent-x", Sessions: 2}, {Pod: "shop/api-2", Agent: "remocal/agent-y", IdleSince: &idle}}}, now)
	for _, want := range []string{"unhealthy", "0.3.0", "op-1", "op-2", "sessions:     2", "agent for shop/api-1 not ready", "TARGET POD", "remocal/agent-y  0         3m"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, buf.String())
		}
	}
}

// fakeOperatorAPI serves the sessions of the golden list: alice may delete
// her own; bob's are refused as the API server would refuse them.
type fakeOperatorAPI struct {
	t       *testing.T
	list    []byte
	mu      sync.Mutex
	deleted []string
}

func (f *fakeOperatorAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	base := "/apis/" + operator.Group + "/" + operator.Version
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/apis/authentication.k8s.io/v1/selfsubjectreviews":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"kind":"SelfSubjectReview","apiVersion":"authentication.k8s.io/v1","status":{"userInfo":{"username":"alice"}}}`)
	case r.Method == http.MethodGet && (r.URL.Path == base+"/namespaces/shop/sessions" || r.URL.Path == base+"/sessions"):
		w.Header().Set("Content-Type", "application/json")
		w.Write(f.list)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, base+"/namespaces/"):
		name := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		f.mu.Lock()
		defer f.mu.Unlock()
		var list operator.SessionList
		json.Unmarshal(f.list, &list)
		owner := ""
		for _, s := range list.Items {
			if s.Name == name {
				owner = s.Spec.User.Username
			}
		}
		switch owner {
		case "":
			status(w, apierrors.NewNotFound(operator.Resource(operator.ResourceSessions), name))
			return
		case "alice":
		default:
			status(w, apierrors.NewForbidden(operator.Resource(operator.ResourceSessions), name,
				errors.New(`User "alice" cannot kill sessions of other users`)))
			return
		}
		f.deleted = append(f.deleted, name)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Success"}`)
	default:
		status(w, apierrors.NewNotFound(operator.Resource("unknown"), r.URL.Path))
	}
}

func status(w http.ResponseWriter, err *apierrors.StatusError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(err.ErrStatus.Code))
	st := err.ErrStatus
	st.Kind, st.APIVersion = "Status", "v1"
	json.NewEncoder(w).Encode(st)
}

func fakeOperatorClient(t *testing.T, f *fakeOperatorAPI) *kube.OperatorClient {
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	cfg := &rest.Config{Host: ts.URL}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kube.NewOperatorClient(&kube.Env{Config: cfg, Client: cs, Namespace: "shop", Context: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kill --all ends only the user's own sessions; --all-users tries every
// one and reports the refusals with the role that would allow them.
func TestSessionsKill(t *testing.T) {
	f := &fakeOperatorAPI{t: t, list: goldenSessions(t)}
	c := fakeOperatorClient(t, f)
	ctx := context.Background()
	var list operator.SessionList
	json.Unmarshal(f.list, &list)
	var others []string
	for _, s := range list.Items {
		if s.Spec.User.Username != "alice" {
			others = append(others, s.Name)
		}
	}
	if len(others) == 0 {
		t.Fatal("the golden list has only alice's sessions; the test needs another user's")
	}

	refs, err := killTargets(ctx, c, "shop", nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := killSessions(ctx, &out, c, refs); err != nil {
		t.Fatalf("kill --all: %v", err)
	}
	if !cmp.Equal(f.deleted, []string{"s-4k2m9q7x1b"}) || !strings.Contains(out.String(), "session shop/s-4k2m9q7x1b ended") {
		t.Errorf("kill --all deleted %q, said %q; want alice's own session only", f.deleted, out.String())
	}

	f.deleted = nil
	refs, _ = killTargets(ctx, c, "shop", nil, true, true)
	err = killSessions(ctx, &out, c, refs)
	var apiErr *kube.OperatorAPIError
	if !errors.As(err, &apiErr) || !apierrors.IsForbidden(err) {
		t.Fatalf("kill --all --all-users as a non-admin: %v; want the API's refusal", err)
	}
	for _, want := range []string{fmt.Sprintf("%d of %d sessions were not ended", len(others), len(list.Items)),
		"refused to delete sessions/" + others[0], "remocal-admin", `cannot kill sessions of other users`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}

	err = killSessions(ctx, &out, c, []sessionRef{{"shop", "s-nonexistent"}})
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), "no session sessions/s-nonexistent in namespace shop") {
		t.Errorf("kill of no such session: %v", err)
	}
}
