package broker_test

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/poll"
)

func TestWelcomeEnvAndDialComeFromThePrimary(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	alice := f.mustConnect("alice", clientOptions{})
	w := alice.Welcome()
	if !wire.HasCapability(w.Capabilities, wire.CapOperator) || wire.HasCapability(w.Capabilities, wire.CapAuth) {
		t.Errorf("capabilities = %v, want operator and no auth", w.Capabilities)
	}
	if w.Operator == nil || w.Operator.Session == "" || w.ClientID != w.Operator.Session ||
		w.Operator.Primary != f.env.App.Name || w.Operator.PrimaryReason != "oldest ready pod" {
		t.Fatalf("welcome = %+v operator %+v", w, w.Operator)
	}
	if w.Target.Name != "deployment/inventory" || w.Target.Hostname != f.env.App.Hostname {
		t.Errorf("welcome target = %+v", w.Target)
	}
	ctx := testCtx(t)
	vars, err := alice.Env(ctx, []string{"GREETING", "SERVICE_NAME"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmt.Sprint(vars), localenv.AppServiceName) {
		t.Errorf("env through the operator = %v, want the app pod's", vars)
	}
	if _, err := alice.ReadFile(ctx, localenv.AppConfigPath); err != nil {
		t.Errorf("read the app pod's config through the operator: %v", err)
	}
	if _, err := alice.ReadFile(ctx, "/no/such/file"); !errors.Is(err, &wire.Error{Code: wire.CodeNotFound}) {
		t.Errorf("a missing file: %v, want not_found from the agent", err)
	}
	// An outgoing connection from the pod: the Redis pod answers PING.
	conn, err := alice.DialContext(ctx, "tcp", localenv.RedisIP.String()+":6379")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PING\r\n")
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "+PONG\r\n" {
		t.Fatalf("redis through the operator: %q, %v", line, err)
	}
	s, ok := f.b.Get(ns, w.Operator.Session)
	if !ok || s.Status.Phase != operator.PhaseActive || s.Spec.User.Username != "alice" || s.Spec.Client.Tool != "broker test" ||
		s.Status.Counters.OutgoingConnections != 1 {
		t.Errorf("session = %+v", s)
	}
}

func TestTwoClientsMirrorOneTarget(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := testCtx(t)
	servers := map[string]*localServer{}
	for _, user := range []string{"alice", "bob"} {
		c := f.mustConnect(user, clientOptions{})
		servers[user] = newLocalServer(t, user)
		if _, err := c.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeMirror}, servers[user].forwarder()); err != nil {
			t.Fatalf("%s mirrors: %v", user, err)
		}
	}
	f.agents.mu.Lock()
	watches := f.agents.watches
	f.agents.mu.Unlock()
	if watches != 1 {
		t.Errorf("two sessions on one target made %d pod watches, want one shared", watches)
	}
	for i := range 3 {
		path := fmt.Sprintf("/items/%d", i)
		if by := f.servedBy(localenv.AppIP, path, nil); by != f.env.App.Hostname {
			t.Fatalf("a mirrored request was answered by %q, want the app", by)
		}
		for user, ls := range servers {
			if err := poll.Until(ctx, 10*time.Second, func() error {
				if !ls.received(path) {
					return fmt.Errorf("%s's local server has no copy of %s", user, path)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestHeaderFilteredStealsEachGetTheirOwn(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := testCtx(t)
	for _, user := range []string{"alice", "bob"} {
		c := f.mustConnect(user, clientOptions{})
		ls := newLocalServer(t, user)
		spec := wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": user}}}
		if _, err := c.Subscribe(ctx, spec, ls.forwarder()); err != nil {
			t.Fatalf("%s steals: %v", user, err)
		}
	}
	for _, user := range []string{"alice", "bob", "alice"} {
		if by := f.servedBy(localenv.AppIP, "/who", hdr("X-User", user)); by != "local-"+user {
			t.Errorf("%s's request served by %q", user, by)
		}
	}
	if by := f.servedBy(localenv.AppIP, "/who", nil); by != f.env.App.Hostname {
		t.Errorf("an unmatched request served by %q, want the app", by)
	}
	if by := f.servedBy(localenv.AppIP, "/who", hdr("X-User", "carol")); by != f.env.App.Hostname {
		t.Errorf("carol's request served by %q, want the app", by)
	}
	list, _ := f.b.List(ns)
	if len(list) != 2 {
		t.Fatalf("sessions = %d", len(list))
	}
	for _, s := range list {
		if len(s.Status.Ports) != 1 || !s.Status.Ports[0].Lock || s.Status.Ports[0].Filter == nil || s.Status.Counters.IncomingRequests == 0 ||
			s.Status.Counters.BytesIn == 0 || s.Status.Counters.BytesOut == 0 {
			t.Errorf("session %s of %s: ports %+v counters %+v", s.Name, s.Spec.User.Username, s.Status.Ports, s.Status.Counters)
		}
	}
}

func TestConflictOverrideAndTheHolderIsTold(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := testCtx(t)
	bob := f.mustConnect("bob", clientOptions{})
	bobLocal := newLocalServer(t, "bob")
	bobSub, err := bob.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "bob"}}}, bobLocal.forwarder())
	if err != nil {
		t.Fatal(err)
	}
	carol := f.mustConnect("carol", clientOptions{})
	carolLocal := newLocalServer(t, "carol")

	_, err = carol.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeSteal}, carolLocal.forwarder())
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeConflict || we.Holder == nil {
		t.Fatalf("carol's unfiltered steal: %v, want a conflict naming bob", err)
	}
	h := we.Holder
	if h.User != "bob" || h.Client != "bob@laptop" || h.Session != bob.Welcome().Operator.Session || h.Since == nil ||
		h.Subscription != bobSub.ID() || h.Filter == nil || h.Filter.Headers["X-User"] != "bob" {
		t.Errorf("holder = %+v", h)
	}
	for _, want := range []string{"bob (bob@laptop, session " + h.Session, `header X-User="bob"`, "since", "override"} {
		if !strings.Contains(we.Message, want) {
			t.Errorf("conflict message %q lacks %q", we.Message, want)
		}
	}

	_, err = carol.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Override: true}, carolLocal.forwarder())
	if !errors.As(err, &we) || we.Code != wire.CodePermissionDenied || !strings.Contains(we.Message, "override") {
		t.Fatalf("carol's override without the permission: %v", err)
	}
	if by := f.servedBy(localenv.AppIP, "/x", hdr("X-User", "bob")); by != "local-bob" {
		t.Fatalf("after a refused override bob's request went to %q", by)
	}

	f.authz.allow("carol")
	if _, err := carol.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Override: true}, carolLocal.forwarder()); err != nil {
		t.Fatalf("carol's override with the permission: %v", err)
	}
	ev := bob.nextEvent(t)
	if ev.Kind != wire.EventSubscriptionLost || ev.Subscription != bobSub.ID() || ev.Port != 8080 || ev.By == nil ||
		ev.By.User != "carol" || !strings.Contains(ev.Message, "carol") {
		t.Fatalf("bob's event = %+v", ev)
	}
	select {
	case <-bobSub.Lost():
	default:
		t.Error("bob's subscription is not ended by the event")
	}
	for _, h := range []http.Header{hdr("X-User", "bob"), nil} {
		if by := f.servedBy(localenv.AppIP, "/x", h); by != "local-carol" {
			t.Errorf("after the override a request with %v went to %q, want carol", h, by)
		}
	}
	// bob's session shows no port now, carol's the lock.
	if s, _ := f.b.Get(ns, bob.Welcome().Operator.Session); len(s.Status.Ports) != 0 {
		t.Errorf("bob's ports after the override: %+v", s.Status.Ports)
	}
}

func TestDeleteTellsTheClientAndEndsTheSession(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := testCtx(t)
	events, err := f.b.Watch(ctx, ns, "")
	if err != nil {
		t.Fatal(err)
	}
	alice := f.mustConnect("alice", clientOptions{})
	name := alice.Welcome().Operator.Session
	if _, err := alice.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeSteal}, newLocalServer(t, "alice").forwarder()); err != nil {
		t.Fatal(err)
	}
	next := func() backend.SessionEvent {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(20 * time.Second):
			t.Fatal("no watch event")
			return backend.SessionEvent{}
		}
	}
	if ev := next(); ev.Type != backend.Added || ev.Session.Name != name {
		t.Fatalf("first watch event = %s %s", ev.Type, ev.Session.Name)
	}
	for {
		ev := next()
		if ev.Type == backend.Modified && len(ev.Session.Status.Ports) == 1 {
			break
		}
	}
	if err := f.b.Delete(ctx, ns, name, "deleted by admin"); err != nil {
		t.Fatal(err)
	}
	if ev := alice.nextEvent(t); ev.Kind != wire.EventSessionEnded || !strings.Contains(ev.Message, "deleted by admin") {
		t.Fatalf("alice's event = %+v", ev)
	}
	select {
	case <-alice.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("alice's connection stays open after her session was deleted")
	}
	for {
		ev := next()
		if ev.Type == backend.Deleted {
			if ev.Session.Name != name {
				t.Fatalf("deleted %s", ev.Session.Name)
			}
			break
		}
	}
	if by := f.servedBy(localenv.AppIP, "/x", nil); by != f.env.App.Hostname {
		t.Errorf("after the delete a request went to %q", by)
	}
	if err := f.b.Delete(ctx, ns, name, ""); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("deleting it again: %v", err)
	}
	// alice's client, which may have lost its connection before it read
	// the end, resumes by name: the ended session stays ended (a name
	// this replica never knew would be adopted: a handover).
	if c, err := f.connect("alice", clientOptions{session: name}); wire.CodeOf(err) != wire.CodeNotFound || !strings.Contains(err.Error(), "deleted by admin") {
		if c != nil {
			c.conn.Close()
		}
		t.Errorf("resuming the deleted session: %v, want not_found saying why it ended", err)
	}
	if _, found := f.b.Get(ns, name); found {
		t.Errorf("the deleted session %s is back", name)
	}
}

// Two targets over the same pods (a Deployment and its Service) hold no
// lock in common, but their steals meet at the pods' agents: the refusal
// still names the session that holds the port.
func TestConflictAcrossTargetsSharingPods(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := testCtx(t)
	alice := f.mustConnect("alice", clientOptions{})
	if _, err := alice.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeSteal}, newLocalServer(t, "alice").forwarder()); err != nil {
		t.Fatal(err)
	}
	bob := f.mustConnect("bob", clientOptions{target: svc})
	_, err := bob.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeSteal}, newLocalServer(t, "bob").forwarder())
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeConflict || we.Holder == nil || we.Holder.User != "alice" ||
		we.Holder.Session != alice.Welcome().Operator.Session || !strings.Contains(we.Message, "deployment/inventory") {
		t.Fatalf("bob's steal through the service: %v (holder %+v), want a conflict naming alice's session", err, we.Holder)
	}
	if by := f.servedBy(localenv.AppIP, "/", nil); by != "local-alice" {
		t.Errorf("served by %q, want alice still", by)
	}
}
