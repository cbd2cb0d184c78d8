package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	featuregatetesting "k8s.io/component-base/featuregate/testing"

	"github.com/remocal/remocal/protocol/operator"
)

func names(items []operator.Session) string {
	var n []string
	for _, s := range items {
		n = append(n, s.Name)
	}
	return strings.Join(n, ",")
}

func TestSessionsListAndGet(t *testing.T) {
	ts := startServer(t)
	var list operator.SessionList
	if code, body := ts.do(t, http.MethodGet, "alice", api+"/namespaces/shop/sessions", &list); code != http.StatusOK {
		t.Fatalf("list: %d %s", code, body)
	}
	if names(list.Items) != "s-alice1,s-bob1,s-bob2" || list.ResourceVersion != "3" {
		t.Errorf("list: %s at version %q", names(list.Items), list.ResourceVersion)
	}
	if code, _ := ts.do(t, http.MethodGet, "alice", api+"/namespaces/shop/sessions?fieldSelector=metadata.name%3Ds-bob1", &list); code != http.StatusOK || names(list.Items) != "s-bob1" {
		t.Errorf("list by name: %d %s", code, names(list.Items))
	}
	var s operator.Session
	if code, body := ts.do(t, http.MethodGet, "alice", api+"/namespaces/shop/sessions/s-bob2", &s); code != http.StatusOK {
		t.Fatalf("get: %d %s", code, body)
	}
	if s.Spec.User.Username != "bob" || s.Spec.Target != "pod.orders-1" {
		t.Errorf("session %+v", s)
	}
	if code, _ := ts.do(t, http.MethodGet, "alice", api+"/namespaces/shop/sessions/s-none", nil); code != http.StatusNotFound {
		t.Errorf("unknown session: %d", code)
	}
	if code, _ := ts.do(t, http.MethodGet, "alice", api+"/namespaces/other/sessions", &list); code != http.StatusOK || len(list.Items) != 0 {
		t.Errorf("another namespace: %d %s", code, names(list.Items))
	}
}

// watchEvent is a watch stream's element.
type watchEvent struct {
	Type   string           `json:"type"`
	Object operator.Session `json:"object"`
}

// watch opens a watch as alice and returns the decoder of its events.
func (ts *testServer) watch(t *testing.T, query string) (*json.Decoder, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.base+api+"/namespaces/shop/sessions?watch=1&"+query, nil)
	req.Header.Set("X-Remote-User", "alice")
	c := ts.client(ts.proxy)
	c.Timeout = 0 // a watch lasts
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return json.NewDecoder(io.LimitReader(res.Body, 1<<20)), res
}

func next(t *testing.T, d *json.Decoder) watchEvent {
	t.Helper()
	var ev watchEvent
	if err := d.Decode(&ev); err != nil {
		t.Fatalf("watch: %v", err)
	}
	return ev
}

func TestSessionsWatch(t *testing.T) {
	ts := startServer(t)
	// From "now" (a list's version): changes only.
	d, res := ts.watch(t, "resourceVersion=3")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("watch: %s", res.Status)
	}
	ts.sessions.add(session("shop", "s-carol1", "carol", "deployment.inventory"))
	ts.sessions.add(session("other", "s-dave1", "dave", "service.web")) // another namespace: not seen
	if ev := next(t, d); ev.Type != "ADDED" || ev.Object.Name != "s-carol1" || ev.Object.ResourceVersion != "4" || ev.Object.Kind != operator.KindSession {
		t.Errorf("first event %s %s v%s kind %q", ev.Type, ev.Object.Name, ev.Object.ResourceVersion, ev.Object.Kind)
	}
	if code, body := ts.do(t, http.MethodDelete, "alice", api+"/namespaces/shop/sessions/s-alice1", nil); code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, body)
	}
	if ev := next(t, d); ev.Type != "DELETED" || ev.Object.Name != "s-alice1" {
		t.Errorf("second event %s %s", ev.Type, ev.Object.Name)
	}

	// From the beginning: every session first.
	d, _ = ts.watch(t, "resourceVersion=0")
	var seen []string
	for range 3 {
		ev := next(t, d)
		seen = append(seen, ev.Type+" "+ev.Object.Name)
	}
	if strings.Join(seen, ",") != "ADDED s-bob1,ADDED s-bob2,ADDED s-carol1" {
		t.Errorf("initial events %v", seen)
	}

	// A version the registry no longer has: 410 Gone, the client lists
	// again.
	d, res = ts.watch(t, "resourceVersion=1")
	var status metav1.Status
	if res.StatusCode == http.StatusOK {
		// Errors found after the stream began arrive as an ERROR event.
		var ev struct {
			Type   string        `json:"type"`
			Object metav1.Status `json:"object"`
		}
		if err := d.Decode(&ev); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		status = ev.Object
	} else if err := d.Decode(&status); err != nil {
		t.Fatal(err)
	}
	if status.Code != http.StatusGone {
		t.Errorf("watch from an expired version: %s %+v", res.Status, status)
	}
}

func TestDeleteOwnSessionsAndOthersOnlyWithKill(t *testing.T) {
	ts := startServer(t)
	// bob may delete, but not kill: alice's session stays.
	code, body := ts.do(t, http.MethodDelete, "bob", api+"/namespaces/shop/sessions/s-alice1", nil)
	if code != http.StatusForbidden || !strings.Contains(body, "belongs to alice") || !strings.Contains(body, `\"kill\" verb`) {
		t.Errorf("bob deletes alice's session: %d %s", code, body)
	}
	if _, ok := ts.sessions.Get("shop", "s-alice1"); !ok {
		t.Error("alice's session was deleted by bob")
	}
	// His own: yes, and the client is told it was its owner.
	var deleted operator.Session
	if code, body := ts.do(t, http.MethodDelete, "bob", api+"/namespaces/shop/sessions/s-bob1", &deleted); code != http.StatusOK || deleted.Name != "s-bob1" {
		t.Errorf("bob deletes his own session: %d %s", code, body)
	}
	if r, _ := ts.sessions.reason("s-bob1"); !strings.Contains(r, "deleted by its owner (bob)") {
		t.Errorf("reason %q", r)
	}
	// The admin kills alice's.
	if code, body := ts.do(t, http.MethodDelete, "admin", api+"/namespaces/shop/sessions/s-alice1", nil); code != http.StatusOK {
		t.Errorf("admin kills alice's session: %d %s", code, body)
	}
	if r, _ := ts.sessions.reason("s-alice1"); !strings.Contains(r, "ended by admin") {
		t.Errorf("reason %q", r)
	}
	if code, _ := ts.do(t, http.MethodDelete, "admin", api+"/namespaces/shop/sessions/s-alice1", nil); code != http.StatusNotFound {
		t.Errorf("deleting it again: %d", code)
	}
	// Without the delete verb at all, RBAC refuses before anything else.
	if code, _ := ts.do(t, http.MethodDelete, "eve", api+"/namespaces/shop/sessions/s-bob2", nil); code != http.StatusForbidden {
		t.Errorf("eve deletes: %d", code)
	}
}

func TestDeleteCollectionDeletesWhatTheCallerMay(t *testing.T) {
	ts := startServer(t)
	var list operator.SessionList
	if code, body := ts.do(t, http.MethodDelete, "bob", api+"/namespaces/shop/sessions", &list); code != http.StatusOK {
		t.Fatalf("bob deletes the collection: %d %s", code, body)
	}
	if names(list.Items) != "s-bob1,s-bob2" {
		t.Errorf("bob deleted %s", names(list.Items))
	}
	left, _ := ts.sessions.List("shop")
	if names(left) != "s-alice1" {
		t.Errorf("left: %s", names(left))
	}
	ts.sessions.add(session("shop", "s-bob3", "bob", "deployment.inventory"))
	if code, body := ts.do(t, http.MethodDelete, "admin", api+"/namespaces/shop/sessions", &list); code != http.StatusOK || names(list.Items) != "s-alice1,s-bob3" {
		t.Errorf("admin deletes the collection: %d %s %s", code, names(list.Items), body)
	}
}

// TestSessionsWatchList: a client that asks for the initial events (the
// WatchList feature, off by default in Kubernetes 1.34) gets the list as
// ADDED events and a bookmark marking their end.
func TestSessionsWatchList(t *testing.T) {
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.WatchList, true)
	ts := startServer(t)
	d, res := ts.watch(t, "sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("watch: %s", res.Status)
	}
	var seen []string
	for range 3 {
		ev := next(t, d)
		seen = append(seen, ev.Type+" "+ev.Object.Name)
	}
	if strings.Join(seen, ",") != "ADDED s-alice1,ADDED s-bob1,ADDED s-bob2" {
		t.Errorf("initial events %v", seen)
	}
	if ev := next(t, d); ev.Type != "BOOKMARK" || ev.Object.Annotations[metav1.InitialEventsAnnotationKey] != "true" || ev.Object.ResourceVersion != "3" {
		t.Errorf("bookmark %+v", ev)
	}
	ts.sessions.add(session("shop", "s-carol1", "carol", "deployment.inventory"))
	if ev := next(t, d); ev.Type != "ADDED" || ev.Object.Name != "s-carol1" {
		t.Errorf("then %s %s", ev.Type, ev.Object.Name)
	}
}

// TestWatchesEndWhenTheServerStops: an open watch (kube-controller-manager's
// garbage collector keeps one on sessions) does not hold a stopping
// server until its shutdown timeout: a stopping leader would keep its
// Lease, and its sessions, that long.
func TestWatchesEndWhenTheServerStops(t *testing.T) {
	ts := startServer(t)
	d, res := ts.watch(t, "resourceVersion=3")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("watch: %s", res.Status)
	}
	start := time.Now()
	if err := ts.stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the server took %v to stop with a watch open", took)
	}
	var ev watchEvent
	if err := d.Decode(&ev); err == nil {
		t.Errorf("the watch went on after the server stopped: %+v", ev)
	}
}
