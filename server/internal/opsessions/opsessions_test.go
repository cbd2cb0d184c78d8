package opsessions

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fcache "k8s.io/client-go/tools/cache/testing"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/protocol/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 7, 10, 2, 0, 0, time.UTC)

func session(name, user string, locks ...uint16) *operator.Session {
	s := &operator.Session{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: operator.SessionSpec{User: operator.UserInfo{Username: user}, Client: operator.ClientInfo{Name: user + "@desk", Tool: "vscode"},
			Target: "deployment.api"},
		Status: operator.SessionStatus{Phase: operator.PhaseActive, StartTime: metav1.NewTime(t0)},
	}
	for _, p := range locks {
		since := metav1.NewTime(t0)
		s.Status.Ports = append(s.Status.Ports, operator.PortStatus{Port: p, Mode: wire.ModeSteal, Lock: true, Since: &since})
	}
	return s
}

// clock is a test's time, moved by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func next(t *testing.T, w *Watcher) Notification {
	t.Helper()
	select {
	case n := <-w.Notifications():
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
		return Notification{}
	}
}

func nextRemote(t *testing.T, w *Watcher) daemon.RemoteSession {
	t.Helper()
	n := next(t, w)
	c, ok := n.Params.(daemon.SessionChanged)
	if n.Method != daemon.NotifySessionChanged || !ok || c.Remote == nil {
		t.Fatalf("notification %s %+v; want a remote sessionChanged", n.Method, n.Params)
	}
	return *c.Remote
}

// Every user's sessions are announced as they come, change and go; a lock
// taken from a session that held it is announced as a conflict naming
// both.
func TestWatcherAnnouncesSessionsAndTakenLocks(t *testing.T) {
	src := fcache.NewFakeControllerSource()
	defer src.Shutdown()
	src.Add(session("s-alice", "alice", 8080))
	clk := &clock{now: t0}
	w := newWith(src, nil, clk.Now)
	defer w.Close()

	r := nextRemote(t, w)
	if r.Name != "s-alice" || r.User != "alice" || r.Client != "alice@desk" || r.Target != "deployment/api" || r.Phase != daemon.RemoteActive ||
		len(r.Ports) != 1 || !r.Ports[0].Lock || r.Ports[0].Port != 8080 || !r.Since.Equal(t0) {
		t.Errorf("alice's session announced as %+v", r)
	}

	// bob mirrors 9090: no lock, no conflict.
	bob := session("s-bob", "bob")
	bob.Status.Ports = []operator.PortStatus{{Port: 9090, Mode: wire.ModeMirror}}
	src.Add(bob.DeepCopy())
	if r := nextRemote(t, w); r.Name != "s-bob" || r.Ports[0].Mode != wire.ModeMirror {
		t.Errorf("bob's session announced as %+v", r)
	}

	// carol overrides: alice loses 8080, carol holds it.
	src.Modify(session("s-alice", "alice"))
	if r := nextRemote(t, w); r.Name != "s-alice" || len(r.Ports) != 0 {
		t.Errorf("alice after the override: %+v", r)
	}
	clk.Add(time.Second)
	src.Add(session("s-carol", "carol", 8080))
	if r := nextRemote(t, w); r.Name != "s-carol" {
		t.Errorf("carol's session announced as %+v", r)
	}
	n := next(t, w)
	c, ok := n.Params.(daemon.Conflict)
	if n.Method != daemon.NotifyConflict || !ok || !c.Taken || c.RemoteSession != "shop/s-alice" || c.Port != 8080 ||
		c.Target != "deployment/api" || c.Holder == nil || c.Holder.User != "carol" || c.Holder.Session != "s-carol" || c.Holder.Since == nil {
		t.Fatalf("after the override: %s %+v (holder %+v); want 8080 taken from s-alice by carol", n.Method, n.Params, c.Holder)
	}
	if c.Message != "port 8080 of deployment/api was taken from session shop/s-alice by carol (carol@desk, session s-carol)" {
		t.Errorf("message %q", c.Message)
	}

	// carol ends; later dave takes the free port: not taken from anybody.
	src.Delete(session("s-carol", "carol", 8080))
	if r := nextRemote(t, w); r.Name != "s-carol" || r.Phase != daemon.RemoteEnded || len(r.Ports) != 0 {
		t.Errorf("carol's end announced as %+v", r)
	}
	clk.Add(time.Minute)
	src.Add(session("s-dave", "dave", 8080))
	if r := nextRemote(t, w); r.Name != "s-dave" {
		t.Errorf("dave's session announced as %+v", r)
	}
	// Notifications come in order: anything about dave comes before
	// the next change of bob's.
	bob = bob.DeepCopy()
	bob.Status.Phase = operator.PhaseDisconnected
	src.Modify(bob)
	if r := nextRemote(t, w); r.Name != "s-bob" || r.Phase != daemon.RemoteDisconnected {
		t.Errorf("after dave took a free port: %+v; want bob's change and nothing about dave", r)
	}

	got := w.List()
	if len(got) != 3 || got[0].Name != "s-alice" || got[1].Name != "s-bob" || got[2].Name != "s-dave" {
		t.Errorf("List = %+v", got)
	}
}

// The holder's update may also come after the taker's.
func TestWatcherTakenBeforeTheHolderLetGo(t *testing.T) {
	src := fcache.NewFakeControllerSource()
	defer src.Shutdown()
	src.Add(session("s-alice", "alice", 8080))
	w := New(src, nil)
	defer w.Close()
	nextRemote(t, w)
	src.Add(session("s-carol", "carol", 8080))
	nextRemote(t, w)
	n := next(t, w)
	if c, ok := n.Params.(daemon.Conflict); !ok || !c.Taken || c.RemoteSession != "shop/s-alice" {
		t.Fatalf("%s %+v; want 8080 taken from s-alice", n.Method, n.Params)
	}
}

func filtered(s *operator.Session, user string) *operator.Session {
	for i := range s.Status.Ports {
		s.Status.Ports[i].Filter = &wire.HTTPFilter{Headers: map[string]string{"X-User": user}}
	}
	return s
}

// Locks of one port with filters that do not conflict are no conflict; an
// unfiltered override takes the port from every filtered holder, as the
// operator's override does (the lock's filter differs from theirs).
func TestWatcherOverrideAcrossFilters(t *testing.T) {
	src := fcache.NewFakeControllerSource()
	defer src.Shutdown()
	src.Add(filtered(session("s-alice", "alice", 8080), "alice"))
	src.Add(filtered(session("s-bob", "bob", 8080), "bob"))
	w := New(src, nil)
	defer w.Close()
	nextRemote(t, w)
	nextRemote(t, w)
	// bob's port goes first, then carol's unfiltered lock comes.
	src.Modify(session("s-bob", "bob"))
	if r := nextRemote(t, w); r.Name != "s-bob" || len(r.Ports) != 0 {
		t.Fatalf("bob after the override: %+v", r)
	}
	src.Add(session("s-carol", "carol", 8080))
	if r := nextRemote(t, w); r.Name != "s-carol" {
		t.Fatalf("carol's session announced as %+v", r)
	}
	from := map[string]bool{}
	for range 2 {
		n := next(t, w)
		c, ok := n.Params.(daemon.Conflict)
		if n.Method != daemon.NotifyConflict || !ok || !c.Taken || c.Holder == nil || c.Holder.Session != "s-carol" || c.Holder.Filter != nil {
			t.Fatalf("%s %+v; want a lock taken by carol without a filter", n.Method, n.Params)
		}
		from[c.RemoteSession] = true
	}
	if !from["shop/s-alice"] || !from["shop/s-bob"] {
		t.Errorf("taken from %v; want alice's and bob's sessions", from)
	}
	// carol's later updates take nothing again; a filtered lock beside
	// another filter is nobody's loss.
	c := session("s-carol", "carol", 8080)
	c.Status.Counters.IncomingRequests = 1
	c.ResourceVersion = "2"
	src.Modify(c)
	nextRemote(t, w)
	src.Add(filtered(session("s-dave", "dave", 9090), "dave"))
	src.Add(filtered(session("s-erin", "erin", 9090), "erin"))
	nextRemote(t, w)
	if r := nextRemote(t, w); r.Name != "s-erin" {
		t.Fatalf("erin's session announced as %+v", r)
	}
	// Notifications come in order: a conflict of erin's would come
	// before this change of bob's.
	b := session("s-bob", "bob")
	b.Status.Phase = operator.PhaseDisconnected
	src.Modify(b)
	if r := nextRemote(t, w); r.Name != "s-bob" || r.Phase != daemon.RemoteDisconnected {
		t.Errorf("after erin's filtered lock beside dave's: %+v; want bob's change and no conflict", r)
	}
}

// A session's queue splits reach clients with their filters, and each
// status update the operator writes (messages delivered) is announced; a
// session that ends shows none.
func TestWatcherAnnouncesQueueSplits(t *testing.T) {
	src := fcache.NewFakeControllerSource()
	defer src.Shutdown()
	w := New(src, nil)
	defer w.Close()
	s := session("s-bob", "bob")
	s.Status.QueueSplits = []operator.QueueSplitStatus{
		{Consumer: "orders-worker", Queue: "orders", Mode: queuesplit.ModeSteal, Since: metav1.NewTime(t0),
			Filter: &queuesplit.Filter{Headers: map[string]string{"tenant": "b"}}, Delivered: 7},
		{Consumer: "orders-worker", Queue: "invoices", Mode: queuesplit.ModeMirror, Since: metav1.NewTime(t0.Add(time.Minute))}}
	src.Add(s)
	r := nextRemote(t, w)
	want := []daemon.RemoteQueueSplit{
		{Consumer: "orders-worker", Queue: "orders", Mode: queuesplit.ModeSteal, Since: t0, Filter: &queuesplit.Filter{Headers: map[string]string{"tenant": "b"}}, Delivered: 7},
		{Consumer: "orders-worker", Queue: "invoices", Mode: queuesplit.ModeMirror, Since: t0.Add(time.Minute)}}
	if diff := cmp.Diff(want, r.QueueSplits); diff != "" {
		t.Fatalf("bob's splits (-want +got):\n%s", diff)
	}

	s = s.DeepCopy()
	s.ResourceVersion = "2"
	s.Status.QueueSplits[0].Delivered = 412
	src.Modify(s)
	if r := nextRemote(t, w); len(r.QueueSplits) != 2 || r.QueueSplits[0].Delivered != 412 {
		t.Errorf("after 412 deliveries: %+v", r.QueueSplits)
	}
	if got := w.List(); len(got) != 1 || len(got[0].QueueSplits) != 2 || got[0].QueueSplits[0].Delivered != 412 {
		t.Errorf("List() = %+v", got)
	}

	src.Delete(s)
	if r := nextRemote(t, w); r.Phase != daemon.RemoteEnded || r.QueueSplits != nil {
		t.Errorf("ended session: phase %s, splits %+v; want Ended and none", r.Phase, r.QueueSplits)
	}
}
