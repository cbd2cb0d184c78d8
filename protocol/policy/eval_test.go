package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/protocol/wire"
)

var api = Target{Namespace: "shop", Kind: "deployment", Name: "api", Container: "app", Labels: map[string]string{"team": "payments"}}

func TestSelects(t *testing.T) {
	for _, c := range []struct {
		name string
		ns   string
		tg   Targets
		want bool
	}{
		{"everything in its namespace", "shop", Targets{}, true},
		{"another namespace", "other", Targets{}, false},
		{"cluster policy, every namespace", "", Targets{}, true},
		{"cluster policy, namespace pattern", "", Targets{Namespaces: []string{"sh*"}}, true},
		{"cluster policy, other namespaces", "", Targets{Namespaces: []string{"prod-*"}}, false},
		{"name", "shop", Targets{Names: []string{"deployment/api"}}, true},
		{"short kind", "shop", Targets{Names: []string{"deploy/api"}}, true},
		{"name pattern", "shop", Targets{Names: []string{"deployment/a*"}}, true},
		{"other name", "shop", Targets{Names: []string{"deployment/web", "pod/*"}}, false},
		{"container", "shop", Targets{Names: []string{"deployment/api/container/app"}}, true},
		{"other container", "shop", Targets{Names: []string{"deployment/api/container/sidecar"}}, false},
		{"labels", "shop", Targets{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}}, true},
		{"other labels", "shop", Targets{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "web"}}}, false},
		{"name and labels", "shop", Targets{Names: []string{"deployment/api"}, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "web"}}}, false},
	} {
		got, err := Selects(&Spec{Targets: c.tg}, c.ns, api)
		if err != nil || got != c.want {
			t.Errorf("%s: Selects = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	bad := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Bogus"}}}
	if _, err := Selects(&Spec{Targets: Targets{Selector: bad}}, "shop", api); err == nil {
		t.Error("a bad selector: no error")
	}
}

func set(spec Spec) Set {
	return Set{{Ref: Ref{Kind: KindPolicy, Namespace: "shop", Name: "p"}, Spec: spec}}
}

func hdrFilter(name, value string) *wire.HTTPFilter {
	return &wire.HTTPFilter{Headers: map[string]string{name: value}}
}

func TestSubscribeRules(t *testing.T) {
	steal := wire.Subscribe{Port: 8080, Mode: wire.ModeSteal}
	filtered := wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: hdrFilter("X-User", "alice")}
	mirror := wire.Subscribe{Port: 8080, Mode: wire.ModeMirror}
	override := filtered
	override.Override = true
	requireUser := &Incoming{RequireHeader: &HeaderRequirement{Name: "x-user", Value: "{{user}}"}}
	for _, c := range []struct {
		name string
		in   *Incoming
		user string
		req  wire.Subscribe
		rule string // "" allowed
	}{
		{"no rules", &Incoming{}, "alice", steal, ""},
		{"block steal", &Incoming{BlockSteal: true}, "alice", steal, RuleBlockSteal},
		{"block steal lets mirror", &Incoming{BlockSteal: true}, "alice", mirror, ""},
		{"block unfiltered", &Incoming{BlockUnfilteredSteal: true}, "alice", steal, RuleBlockUnfilteredSteal},
		{"block unfiltered lets filtered", &Incoming{BlockUnfilteredSteal: true}, "alice", filtered, ""},
		{"block mirror", &Incoming{BlockMirror: true}, "alice", mirror, RuleBlockMirror},
		{"block mirror lets steal", &Incoming{BlockMirror: true}, "alice", steal, ""},
		{"header: own name", requireUser, "alice", filtered, ""},
		{"header: another's name", requireUser, "bob", filtered, RuleRequireHeader},
		{"header: none", requireUser, "alice", steal, RuleRequireHeader},
		{"header: pattern", requireUser, "alice", wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: hdrFilter("x-user", "alice|bob")}, RuleRequireHeader},
		{"header: escaped literal", requireUser, "a.b", wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: hdrFilter("x-user", `a\.b`)}, ""},
		{"header: mirrors unaffected", requireUser, "alice", mirror, ""},
		{"forbid override", &Incoming{ForbidOverride: true}, "alice", override, RuleForbidOverride},
		{"forbid override lets plain", &Incoming{ForbidOverride: true}, "alice", filtered, ""},
	} {
		d := set(Spec{Incoming: c.in}).Subscribe(c.user, "deployment/api", c.req)
		switch {
		case c.rule == "" && d != nil:
			t.Errorf("%s: denied: %v", c.name, d)
		case c.rule != "" && (d == nil || d.Rule != c.rule):
			t.Errorf("%s: got %v, want rule %s", c.name, d, c.rule)
		case d != nil:
			we := d.Wire()
			if !errors.Is(we, &wire.Error{Code: wire.CodePermissionDenied}) || we.Policy.Name != "p" || we.Policy.Rule != c.rule ||
				!strings.HasPrefix(we.Message, "RemocalPolicy shop/p denies it (rule "+c.rule+")") {
				t.Errorf("%s: wire error %+v", c.name, we)
			}
		}
	}
}

type fakeResolver map[string][]string

func (r fakeResolver) LookupHost(_ context.Context, h string) ([]string, error) {
	if a, ok := r[h]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func (r fakeResolver) LookupAddr(_ context.Context, a string) ([]string, error) {
	return r["ptr:"+a], nil
}

func TestDialRules(t *testing.T) {
	r := fakeResolver{"db.shop.svc.cluster.local": {"10.96.0.7"}, "ptr:10.96.0.8": {"cache.shop.svc.cluster.local."}}
	db := netip.MustParseAddrPort("10.96.0.7:5432")
	cache := netip.MustParseAddrPort("10.96.0.8:6379")
	outside := netip.MustParseAddrPort("192.0.2.1:443")
	for _, c := range []struct {
		name string
		out  Outgoing
		ap   netip.AddrPort
		rule string
	}{
		{"allow cidr", Outgoing{Allow: []Destination{{CIDR: "10.96.0.0/12"}}}, db, ""},
		{"allow cidr refuses others", Outgoing{Allow: []Destination{{CIDR: "10.96.0.0/12"}}}, outside, RuleOutgoingAllow},
		{"allow port", Outgoing{Allow: []Destination{{Ports: []int32{5432}}}}, cache, RuleOutgoingAllow},
		{"allow host", Outgoing{Allow: []Destination{{Host: "db.shop.svc.cluster.local"}}}, db, ""},
		{"allow host pattern", Outgoing{Allow: []Destination{{Host: "*.shop.svc.cluster.local"}}}, cache, ""},
		{"block host", Outgoing{Block: []Destination{{Host: "db.shop.svc.cluster.local", Ports: []int32{5432}}}}, db, RuleOutgoingBlock},
		{"block host lets others", Outgoing{Block: []Destination{{Host: "db.shop.svc.cluster.local"}}}, cache, ""},
		{"block address", Outgoing{Block: []Destination{{CIDR: "192.0.2.1"}}}, outside, RuleOutgoingBlock},
	} {
		d := set(Spec{Outgoing: &c.out}).Dial(context.Background(), r, c.ap)
		if (c.rule == "") != (d == nil) || (d != nil && d.Rule != c.rule) {
			t.Errorf("%s: %v, want rule %q", c.name, d, c.rule)
		}
	}
}

func TestEnvAndFiles(t *testing.T) {
	s := set(Spec{Env: &Env{Exclude: []string{"*_SECRET"}},
		Files: &Files{Local: []string{"/etc/resolv.conf"}, ReadOnly: []string{"/data"}, NotFound: []string{"/var/run/secrets", "/home/*/.ssh"}}})
	vars := map[string]string{"API_SECRET": "x", "HOME": "/root"}
	s.FilterEnv(vars)
	if len(vars) != 1 || vars["HOME"] == "" {
		t.Errorf("env after exclusion = %v", vars)
	}
	for _, c := range []struct {
		path  string
		write bool
		rule  string
	}{
		{"/var/run/secrets/kubernetes.io/token", false, RuleFilesNotFound},
		{"/var/run/secretsX", false, ""},
		{"/home/app/.ssh/id_rsa", false, RuleFilesNotFound},
		{"/etc/resolv.conf", false, RuleFilesLocal},
		{"/data/x", false, ""},
		{"/data/x", true, RuleFilesReadOnly},
		{"/etc/hosts", true, ""},
	} {
		d := s.File(c.path, c.write)
		if (c.rule == "") != (d == nil) || (d != nil && d.Rule != c.rule) {
			t.Errorf("%s (write %v): %v, want rule %q", c.path, c.write, d, c.rule)
		}
	}
}

func TestSortPutsClusterPoliciesFirst(t *testing.T) {
	s := Set{{Ref: Ref{Kind: KindPolicy, Namespace: "shop", Name: "a"}}, {Ref: Ref{Kind: KindClusterPolicy, Name: "z"}}}
	s.Sort()
	if s[0].Ref.Kind != KindClusterPolicy {
		t.Errorf("order = %v", s)
	}
}

// BenchmarkChecks measures a request's policy checks with ten policies
// applying (what the operator does on every subscription, file request
// and dial; docs/operator.md, Policies).
func BenchmarkChecks(b *testing.B) {
	var s Set
	for i := range 10 {
		s = append(s, Applied{Ref: Ref{Kind: KindPolicy, Namespace: "shop", Name: fmt.Sprint("p", i)}, Spec: Spec{
			Incoming: &Incoming{BlockUnfilteredSteal: true, RequireHeader: &HeaderRequirement{Name: "x-user", Value: "{{user}}"}},
			Outgoing: &Outgoing{Allow: []Destination{{CIDR: "10.0.0.0/8"}}, Block: []Destination{{CIDR: "10.96.0.1", Ports: []int32{443}}}},
			Files:    &Files{NotFound: []string{"/var/run/secrets", "/home/*/.ssh"}, ReadOnly: []string{"/data"}},
		}})
	}
	sub := wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: hdrFilter("X-User", "alice")}
	ap := netip.MustParseAddrPort("10.96.0.7:5432")
	b.Run("subscribe", func(b *testing.B) {
		for b.Loop() {
			if d := s.Subscribe("alice", "deployment/api", sub); d != nil {
				b.Fatal(d)
			}
		}
	})
	b.Run("file", func(b *testing.B) {
		for b.Loop() {
			if d := s.File("/etc/app/config.json", false); d != nil {
				b.Fatal(d)
			}
		}
	})
	b.Run("dial", func(b *testing.B) {
		for b.Loop() {
			if d := s.Dial(context.Background(), nil, ap); d != nil {
				b.Fatal(d)
			}
		}
	})
}

func TestQueueSplitRules(t *testing.T) {
	set := func(q Queues) Set {
		return Set{{Ref: Ref{Kind: "RemocalPolicy", Namespace: "shop", Name: "queues"}, Spec: Spec{Queues: &q}}}
	}
	filtered := wire.QueueSplit{Consumer: "orders-worker", Mode: "steal", Filter: &wire.QueueFilter{Headers: map[string]string{"tenant": "a"}}}
	whole := wire.QueueSplit{Consumer: "orders-worker", Mode: "mirror"}
	for _, c := range []struct {
		name string
		q    Queues
		req  wire.QueueSplit
		rule string
	}{
		{"no rule", Queues{}, whole, ""},
		{"blocked", Queues{BlockSplit: true}, filtered, RuleQueuesBlockSplit},
		{"steal blocked", Queues{BlockSteal: true}, filtered, RuleQueuesBlockSteal},
		{"mirror while steal blocked", Queues{BlockSteal: true}, whole, ""},
		{"filter required", Queues{RequireFilter: true}, whole, RuleQueuesRequireFilter},
		{"empty filter", Queues{RequireFilter: true}, wire.QueueSplit{Consumer: "c", Filter: &wire.QueueFilter{}}, RuleQueuesRequireFilter},
		{"filter given", Queues{RequireFilter: true}, filtered, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := set(c.q).QueueSplit("deployment/orders-worker", c.req)
			if c.rule == "" {
				if d != nil {
					t.Fatalf("refused: %v", d)
				}
				return
			}
			if d == nil || d.Rule != c.rule {
				t.Fatalf("got %v, want rule %s", d, c.rule)
			}
			if w := d.Wire(); w.Code != wire.CodePermissionDenied || w.Policy == nil || w.Policy.Rule != c.rule {
				t.Fatalf("wire error %+v", w)
			}
		})
	}
}
