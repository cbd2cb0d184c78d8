package broker_test

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/operator/internal/broker"
	"github.com/remocal/remocal/protocol/policy"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/poll"
)

// staticPolicies is a unit-test seam for the operator's informer: every
// policy in it applies to every target (selection is protocol/policy's,
// tested there).
type staticPolicies struct {
	mu  sync.Mutex
	set policy.Set
}

func (p *staticPolicies) For(policy.Target) (policy.Set, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append(policy.Set(nil), p.set...), nil
}

func (p *staticPolicies) put(name string, spec policy.Spec) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set = append(p.set, policy.Applied{Ref: policy.Ref{Kind: policy.KindPolicy, Namespace: ns, Name: name}, Spec: spec})
}

// auditLog keeps the broker's audit records.
type auditLog struct {
	mu      sync.Mutex
	records []broker.Record
}

func (a *auditLog) Record(r broker.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.records = append(a.records, r)
}

func (a *auditLog) find(action, decision string) *broker.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.records {
		if a.records[i].Action == action && a.records[i].Decision == decision {
			r := a.records[i]
			return &r
		}
	}
	return nil
}

// denied checks that err is a policy's refusal naming the policy and rule.
func denied(t *testing.T, what string, err error, name, rule string, code wire.Code) {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != code || we.Policy == nil || we.Policy.Name != name || we.Policy.Rule != rule ||
		!strings.Contains(we.Message, "RemocalPolicy shop/"+name+" denies it (rule "+rule+")") {
		t.Errorf("%s: %v (%+v), want %s from policy %s rule %s", what, err, we, code, name, rule)
	}
}

func TestPolicyRulesAtTheBroker(t *testing.T) {
	pols := &staticPolicies{}
	audit := &auditLog{}
	pols.put("incoming", policy.Spec{Incoming: &policy.Incoming{BlockUnfilteredSteal: true, BlockMirror: true,
		RequireHeader: &policy.HeaderRequirement{Name: "X-User", Value: "{{user}}"}}})
	pols.put("outgoing", policy.Spec{Outgoing: &policy.Outgoing{
		Allow: []policy.Destination{{CIDR: netip.PrefixFrom(localenv.AppIP, 24).Masked().String()}},
		Block: []policy.Destination{{CIDR: localenv.RedisIP.String() + "/32", Ports: []int32{6379}}}}})
	pols.put("env-files", policy.Spec{Env: &policy.Env{Exclude: []string{"GREET*"}},
		Files: &policy.Files{NotFound: []string{"/etc/inventory"}, ReadOnly: []string{"/etc"}, Local: []string{"/etc/resolv.conf"}}})
	f := newFixture(t, fixtureOptions{policies: pols, auditor: audit})
	ctx := testCtx(t)
	alice := f.mustConnect("alice", clientOptions{})
	ls := newLocalServer(t, "alice")

	_, err := alice.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeMirror}, ls.forwarder())
	denied(t, "mirror", err, "incoming", policy.RuleBlockMirror, wire.CodePermissionDenied)
	_, err = alice.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeSteal}, ls.forwarder())
	denied(t, "unfiltered steal", err, "incoming", policy.RuleBlockUnfilteredSteal, wire.CodePermissionDenied)
	_, err = alice.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "bob"}}}, ls.forwarder())
	denied(t, "steal of bob's requests", err, "incoming", policy.RuleRequireHeader, wire.CodePermissionDenied)
	if _, err := alice.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: &wire.HTTPFilter{Headers: map[string]string{"x-user": "alice"}}}, ls.forwarder()); err != nil {
		t.Fatalf("steal of her own requests: %v", err)
	}
	if by := f.servedBy(localenv.AppIP, "/mine", hdr("X-User", "alice")); by != "local-alice" {
		t.Errorf("alice's request served by %q", by)
	}

	vars, err := alice.Env(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := vars["GREETING"]; ok || vars["SERVICE_NAME"] == "" {
		t.Errorf("env with GREET* excluded = %v", vars)
	}
	_, err = alice.ReadFile(ctx, localenv.AppConfigPath)
	denied(t, "read a not-found file", err, "env-files", policy.RuleFilesNotFound, wire.CodeNotFound)
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("not-found file errno: %v", err)
	}
	if _, err := alice.Stat(ctx, "/etc/hostname"); err != nil {
		t.Errorf("stat of a read-only path: %v", err)
	}
	err = alice.Access(ctx, "/etc/hostname", 2)
	denied(t, "write access to a read-only path", err, "env-files", policy.RuleFilesReadOnly, wire.CodePermissionDenied)

	_, err = alice.ReadFile(ctx, "/etc/resolv.conf")
	denied(t, "read a local-only file", err, "env-files", policy.RuleFilesLocal, wire.CodeNotFound)

	_, err = alice.DialContext(ctx, "tcp", localenv.RedisIP.String()+":6379")
	denied(t, "dial a blocked destination", err, "outgoing", policy.RuleOutgoingBlock, wire.CodePermissionDenied)
	_, err = alice.DialContext(ctx, "tcp", "192.0.2.1:80")
	denied(t, "dial outside the allowed destinations", err, "outgoing", policy.RuleOutgoingAllow, wire.CodePermissionDenied)
	app, err := alice.DialContext(ctx, "tcp", netip.AddrPortFrom(localenv.AppIP, 8080).String())
	if err != nil {
		t.Fatalf("dial an allowed destination: %v", err)
	}
	app.Close()

	r := audit.find(broker.ActionPolicyDenial, broker.DecisionDeny)
	if r == nil || r.User.Username != "alice" || r.Namespace != ns || r.Target != tgt || r.Policy == nil || r.Rule == "" || r.From.Name != "alice@laptop" {
		t.Errorf("policy denial record = %+v", r)
	}
	if r := audit.find(broker.ActionConnect, broker.DecisionAllow); r == nil || !strings.Contains(r.Reason, "RemocalPolicy shop/incoming") {
		t.Errorf("connect record = %+v", r)
	}
	if r := audit.find(broker.ActionSubscribe, broker.DecisionAllow); r == nil || !strings.Contains(r.What, "steal port 8080") {
		t.Errorf("subscribe record = %+v", r)
	}
}

func TestForbidOverrideHoldsAgainstRBAC(t *testing.T) {
	pols := &staticPolicies{}
	pols.put("no-override", policy.Spec{Incoming: &policy.Incoming{ForbidOverride: true}})
	f := newFixture(t, fixtureOptions{policies: pols})
	f.authz.allow("carol")
	ctx := testCtx(t)
	bob := f.mustConnect("bob", clientOptions{})
	if _, err := bob.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeSteal}, newLocalServer(t, "bob").forwarder()); err != nil {
		t.Fatal(err)
	}
	carol := f.mustConnect("carol", clientOptions{})
	_, err := carol.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Override: true}, newLocalServer(t, "carol").forwarder())
	denied(t, "override", err, "no-override", policy.RuleForbidOverride, wire.CodePermissionDenied)
	if by := f.servedBy(localenv.AppIP, "/x", nil); by != "local-bob" {
		t.Errorf("after the refused override the request went to %q", by)
	}
}

func TestPolicyCreatedMidSessionTakesAwayWhatItForbids(t *testing.T) {
	pols := &staticPolicies{}
	audit := &auditLog{}
	f := newFixture(t, fixtureOptions{policies: pols, auditor: audit})
	ctx := testCtx(t)
	alice := f.mustConnect("alice", clientOptions{})
	sub, err := alice.Subscribe(ctx, wire.Subscribe{Port: 8080, Mode: wire.ModeSteal}, newLocalServer(t, "alice").forwarder())
	if err != nil {
		t.Fatal(err)
	}
	if by := f.servedBy(localenv.AppIP, "/before", nil); by != "local-alice" {
		t.Fatalf("before the policy: served by %q", by)
	}
	redis, err := alice.DialContext(ctx, "tcp", localenv.RedisIP.String()+":6379")
	if err != nil {
		t.Fatal(err)
	}
	defer redis.Close()

	pols.put("late", policy.Spec{Incoming: &policy.Incoming{BlockSteal: true},
		Outgoing: &policy.Outgoing{Block: []policy.Destination{{Ports: []int32{6379}}}}})
	f.b.PoliciesChanged()
	ev := alice.nextEvent(t)
	if ev.Kind != wire.EventSubscriptionLost || ev.Subscription != sub.ID() ||
		!strings.Contains(ev.Message, "RemocalPolicy shop/late denies it (rule incoming.blockSteal)") {
		t.Fatalf("event = %+v", ev)
	}
	if by := f.servedBy(localenv.AppIP, "/after", nil); by != f.env.App.Hostname {
		t.Errorf("after the policy: served by %q, want the app", by)
	}
	// The open connection to Redis is closed.
	redis.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := bufio.NewReader(redis).ReadString('\n'); err == nil {
		t.Error("the blocked connection still reads")
	}
	if err := poll.Until(ctx, 5*time.Second, func() error {
		if audit.find(broker.ActionPolicyDenial, broker.DecisionRevoke) == nil {
			return errors.New("no revoke record")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if s, _ := f.b.Get(ns, alice.Welcome().Operator.Session); len(s.Status.Ports) != 0 {
		t.Errorf("ports after the policy: %+v", s.Status.Ports)
	}
}

func TestKillIsAuditedWithWhoEndedIt(t *testing.T) {
	audit := &auditLog{}
	f := newFixture(t, fixtureOptions{auditor: audit})
	alice := f.mustConnect("alice", clientOptions{})
	ctx := genericapirequest.WithUser(testCtx(t), &user.DefaultInfo{Name: "erin", Groups: []string{"admins"}})
	if err := f.b.Delete(ctx, ns, alice.Welcome().Operator.Session, "the session was ended by erin (kill)"); err != nil {
		t.Fatal(err)
	}
	r := audit.find(broker.ActionKill, broker.DecisionAllow)
	if r == nil || r.User.Username != "erin" || r.What != "delete session of alice" || r.Session != alice.Welcome().Operator.Session {
		t.Errorf("kill record = %+v", r)
	}
	if err := poll.Until(ctx, 10*time.Second, func() error {
		if r := audit.find(broker.ActionSessionEnd, broker.DecisionAllow); r == nil || r.User.Username != "alice" || r.Duration <= 0 {
			return fmt.Errorf("session-end record = %+v", r)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
