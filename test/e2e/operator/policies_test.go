package operator

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"

	remocaloperator "github.com/remocal/remocal/operator"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/procwatch"
)

// Policies on the deployed operator: a namespaced policy requiring each
// user's own header, a cluster policy (limited to the test's namespace)
// refusing mirrors, excluding a variable, hiding a file and blocking a
// destination; a policy created while a session runs; what developers,
// the audit lines, the target's Events, the metrics and the status show.
// The rules one by one are tested at the broker
// (operator/internal/broker, TestPolicyRulesAtTheBroker).
func TestPolicies(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(`{"fs": {"remote": ["/etc/inventory"]}}`)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	alice := f.user("alice", "remocal-user")
	bob := f.user("bob", "remocal-user")
	cpName := applyTestPolicies(t, f)
	cp := "RemocalClusterPolicy " + cpName
	own := "RemocalPolicy " + f.ns + "/own-header"

	t.Run("remocal operator policies", func(t *testing.T) {
		err := poll.Until(f.ctx(), 30*time.Second, func() error {
			r := procwatch.Run(t, f.remocal(alice, "operator", "policies", "-n", f.ns, "-t", "deployment/inventory"))
			for _, want := range []string{"deployment/inventory (namespace " + f.ns + "):", cp, own,
				`incoming: a steal must filter on header X-Remocal-User = "{{user}}"`, "incoming: no mirror",
				"env: without GREET*", "files: not found: /etc/inventory/config.json", "files: never from the target: /etc/hostname", "outgoing: never to host inventory." + f.ns} {
				if !strings.Contains(r.Stdout, want) {
					return fmt.Errorf("remocal operator policies (exit %d) lacks %q:\n%s%s", r.Code, want, r.Stdout, r.Stderr)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	// A refused subscription is told and the program runs on without
	// the port's traffic, as under onConflict: continue.
	t.Run("the cluster policy refuses a mirror", func(t *testing.T) {
		a := f.start(alice, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
		a.Expect(a.Stderr, cp+" denies it (rule incoming.blockMirror): mirroring port 8080 of deployment/inventory is not allowed")
		stop(a)
	})

	f.configure(alice, stealFor("alice"))
	f.configure(bob, stealFor("alice"))
	t.Run("each user steals only their own requests", func(t *testing.T) {
		b := f.start(bob, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
		b.Expect(b.Stderr, own+` denies it (rule incoming.requireHeader): stealing port 8080 of deployment/inventory needs an HTTP filter on header X-Remocal-User with a value matching "bob"`)
		stop(b)
	})

	t.Run("env, files and destinations", func(t *testing.T) {
		r := f.exec(alice, "deployment/inventory", []string{"--no-incoming"}, f.probe(), "env=GREETING", "env=SERVICE_NAME")
		mustContain(t, "alice's environment", r.Stdout, "env GREETING=\n")
		r = f.exec(alice, "deployment/inventory", []string{"--no-incoming"}, f.probe(), "read=/etc/inventory/config.json")
		mustContain(t, "alice's hidden file", r.Stdout, "read: ERROR", "no such file or directory")
		// files.local: the program reads this machine's file, not the
		// pod's, and does not fail.
		local, err := os.ReadFile("/etc/hostname")
		if err != nil {
			t.Fatalf("this machine's /etc/hostname, which the policy keeps local: %v", err)
		}
		r = f.exec(alice, "deployment/inventory", []string{"--no-incoming"}, f.probe(), "read=/etc/hostname")
		mustContain(t, "alice's local-only file", r.Stdout, "read /etc/hostname: "+strings.TrimSpace(string(local))+"\n")
		r = f.exec(alice, "deployment/inventory", []string{"--no-incoming"}, f.probe(), "get=http://inventory/healthz")
		mustContain(t, "alice's blocked destination", r.Stdout, "get: ERROR")
	})

	a := f.start(alice, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
	a.Expect(a.Stderr, `stealing port 8080 of the target where header X-Remocal-User="alice"`)
	if body := f.mustGet(appURL(pod, "/mine"), "X-Remocal-User: alice"); body != "local probe" {
		t.Errorf("alice's request got %q, want her laptop's answer", body)
	}

	before := f.scrape(t)
	t.Run("a policy created mid-session", func(t *testing.T) {
		f.apply(`apiVersion: policy.remocal.dev/v1alpha1
kind: RemocalPolicy
metadata:
  name: no-steal
spec:
  incoming: {blockSteal: true}
`)
		a.Expect(a.Stderr, "RemocalPolicy "+f.ns+"/no-steal denies it (rule incoming.blockSteal)")
		f.getUntil(appURL(pod, "/healthz"), "ok", "X-Remocal-User: alice")
		b := f.start(bob, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
		b.Expect(b.Stderr, "RemocalPolicy "+f.ns+"/no-steal denies it (rule incoming.blockSteal)")
		stop(b)
	})
	stop(a)

	// The sessions of finished clients would end after the session TTL;
	// an admin ends them now (kill), which is audited too.
	f.kubectl("delete", "sessions", "--all")
	t.Run("events on the target", func(t *testing.T) { checkTargetEvents(t, f, own) })

	t.Run("audit lines", func(t *testing.T) { checkPolicyAudit(t, f, own, cpName) })

	t.Run("metrics", func(t *testing.T) { checkPolicyMetrics(t, f, before) })

	t.Run("status", func(t *testing.T) { checkPolicyStatus(t, f) })
}

func checkTargetEvents(t *testing.T, f *fixture, own string) {
	err := poll.Until(f.ctx(), 30*time.Second, func() error {
		var list corev1.EventList
		if err := json.Unmarshal([]byte(f.kubectl("get", "events", "--field-selector", "involvedObject.kind=Deployment,involvedObject.name=inventory", "-o", "json")), &list); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, ev := range list.Items {
			switch {
			case ev.Reason == remocaloperator.EventPolicyDenied && ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Message, own) && strings.Contains(ev.Message, "bob"):
				seen["denied"] = true
			case ev.Reason == remocaloperator.EventSessionStarted && strings.Contains(ev.Message, "alice (alice@laptop) started remocal session s-"):
				seen["started"] = true
			case ev.Reason == remocaloperator.EventSessionEnded:
				seen["ended"] = true
			}
		}
		if len(seen) != 3 {
			return fmt.Errorf("events on deployment/inventory: saw %v of denied, started, ended", seen)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func checkPolicyAudit(t *testing.T, f *fixture, own, cpName string) {
	checks := []struct {
		what string
		ok   func(l remocaloperator.AuditLine) bool
	}{
		{"bob's denial", func(l remocaloperator.AuditLine) bool {
			return l.Action == "policy-denial" && l.User == "bob" && l.Decision == "deny" && l.Namespace == f.ns &&
				l.Target == "deployment/inventory" && l.Policy != nil && l.Policy.Name == "own-header" && l.Rule == "incoming.requireHeader" &&
				l.From.Client == "bob@laptop" && l.What == "steal port 8080"
		}},
		{"the revoked steal", func(l remocaloperator.AuditLine) bool {
			return l.Action == "policy-denial" && l.User == "alice" && l.Decision == "revoke" && l.Policy != nil && l.Policy.Name == "no-steal"
		}},
		{"the blocked dial", func(l remocaloperator.AuditLine) bool {
			return l.Action == "policy-denial" && l.User == "alice" && l.Rule == "outgoing.block" && l.Policy != nil && l.Policy.Name == cpName
		}},
		{"alice's connect", func(l remocaloperator.AuditLine) bool {
			return l.Action == "connect" && l.User == "alice" && l.Decision == "allow" && strings.Contains(l.Reason, own)
		}},
		{"alice's subscription", func(l remocaloperator.AuditLine) bool {
			return l.Action == "subscribe" && l.User == "alice" && l.Decision == "allow" && strings.Contains(l.What, "steal port 8080")
		}},
		{"a session's end", func(l remocaloperator.AuditLine) bool {
			return l.Action == "session-end" && l.User == "alice" && l.Seconds > 0
		}},
		{"the admin's kill", func(l remocaloperator.AuditLine) bool {
			return l.Action == "kill" && l.User != "alice" && l.What == "delete session of alice" && strings.Contains(l.Reason, "(kill)")
		}},
	}
	err := poll.Until(f.ctx(), 45*time.Second, func() error {
		lines := f.auditLines(t)
		for _, c := range checks {
			if !slices.ContainsFunc(lines, c.ok) {
				return fmt.Errorf("no audit line for %s among %d", c.what, len(lines))
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func checkPolicyMetrics(t *testing.T, f *fixture, before map[string]float64) {
	after := f.scrape(t)
	denials := `remocal_operator_policy_denials_total{policy="RemocalPolicy ` + f.ns + `/no-steal",rule="incoming.blockSteal"}`
	if after[denials] < before[denials]+2 { // alice's revoked steal, bob's refused one
		t.Errorf("%s went from %v to %v", denials, before[denials], after[denials])
	}
	for _, name := range []string{
		`remocal_operator_sessions_total{namespace="` + f.ns + `",target_kind="deployment",user="alice"}`,
		`remocal_operator_connect_duration_seconds_count{target_kind="deployment"}`,
		`remocal_operator_routed_requests_total{mode="steal"}`,
		`remocal_operator_routed_bytes_total{mode="steal"}`,
		`remocal_operator_agents`,
	} {
		if after[name] <= 0 {
			t.Errorf("%s = %v, want > 0", name, after[name])
		}
	}
}

func checkPolicyStatus(t *testing.T, f *fixture) {
	var st operator.OperatorStatus
	if err := json.Unmarshal([]byte(f.kubectl("get", "operatorstatus", "operator", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range st.Status.RecentDenials {
		if d.User == "bob" && d.Namespace == f.ns && d.Rule == "incoming.requireHeader" {
			found = true
		}
	}
	if !found {
		t.Errorf("recent denials lack bob's: %+v", st.Status.RecentDenials)
	}
	found = false
	for _, u := range st.Status.Usage {
		if u.User == "alice" && u.Namespace == f.ns && u.Target == "deployment/inventory" && u.Sessions >= 2 && u.Seconds > 0 &&
			u.Day == time.Now().UTC().Format(time.DateOnly) {
			found = true
		}
	}
	if !found {
		t.Errorf("usage lacks alice's: %+v", st.Status.Usage)
	}
}

// applyTestPolicies creates TestPolicies' policies: the namespaced
// own-header and a cluster policy limited to the test's namespace, named
// after it (deleted after the test); it returns the cluster policy's name.
func applyTestPolicies(t *testing.T, f *fixture) string {
	cpName := "e2e-" + f.ns
	f.apply(`apiVersion: policy.remocal.dev/v1alpha1
kind: RemocalPolicy
metadata:
  name: own-header
spec:
  targets:
    names: [deploy/inventory]
  incoming:
    requireHeader: {name: X-Remocal-User, value: "{{user}}"}
`)
	if _, err := f.c.KubectlInput(f.ctx(), fmt.Sprintf(`apiVersion: policy.remocal.dev/v1alpha1
kind: RemocalClusterPolicy
metadata:
  name: %s
spec:
  targets:
    namespaces: [%s]
    selector: {matchLabels: {app: inventory}}
  incoming: {blockMirror: true}
  env: {exclude: [GREET*]}
  files: {notFound: [/etc/inventory/config.json], local: [/etc/hostname]}
  outgoing:
    block: [{host: inventory.%s.svc.cluster.local, ports: [80]}]
`, cpName, f.ns, f.ns), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		f.c.Kubectl(ctx, "delete", "remocalclusterpolicy", cpName, "--ignore-not-found")
	})
	return cpName
}

// auditLines parses the operator's audit lines (JSON on its standard
// output, beside its logs on standard error).
func (f *fixture) auditLines(t *testing.T) []remocaloperator.AuditLine {
	t.Helper()
	out := f.op.kubectl(t, "logs", "-l", "app.kubernetes.io/name=remocal-operator", "--tail=-1")
	var lines []remocaloperator.AuditLine
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		text := sc.Text()
		if !strings.HasPrefix(text, "{") {
			continue
		}
		var l remocaloperator.AuditLine
		if err := json.Unmarshal([]byte(text), &l); err != nil || l.Audit != "remocal" {
			continue
		}
		if l.Namespace == f.ns {
			lines = append(lines, l)
		}
	}
	return lines
}

// scrape reads the operator's metrics endpoint (through a port-forward to
// its pod) and parses it as Prometheus does: each sample by its name and
// labels, as in the text format.
func (f *fixture) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	podName := f.op.kubectl(t, "get", "pods", "-l", "app.kubernetes.io/name=remocal-operator", "-o", "jsonpath={.items[0].metadata.name}")
	addr, stopPF, err := f.c.PortForward(f.ctx(), f.op.ns, "pod/"+podName, 9090)
	if err != nil {
		t.Fatal(err)
	}
	defer stopPF()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		t.Fatal(err)
	}
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse the metrics: %v", err)
	}
	out := map[string]float64{}
	for name, fam := range families {
		for _, m := range fam.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch fam.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.Counter.GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.Gauge.GetValue()
			case dto.MetricType_HISTOGRAM:
				out[strings.Replace(key, name, name+"_count", 1)] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}
