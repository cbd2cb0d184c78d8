package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/procwatch"
	"github.com/remocal/remocal/test/queueapp/queuerecord"
)

// Queue splitting end to end (issue 16, docs/queues.md), for each broker:
// a producer publishes numbered messages with a tenant header (a, b, c in
// turn); the deployed consumer (test/queueapp, a Deployment of 2 pods)
// and two developers' local copies of it run under `remocal exec` through
// the operator, alice stealing tenant=a and bob tenant=b. While the
// producer runs, the operator's pod is deleted (a new one resumes the
// split from the consumer's status and the broker), bob's client is
// SIGKILLed (his session expires; his queue drains to the deployed
// consumer) and alice stops. At the end every number was consumed exactly
// once, by the consumer its tenant says while its session lived, and the
// workload's env and the broker's queues are as they were.
func TestQueueSplit(t *testing.T) {
	for _, kind := range []string{"redis", "nats"} {
		t.Run(kind, func(t *testing.T) { testQueueSplit(t, kind) })
	}
}

var queueImages struct {
	once sync.Once
	err  error
}

// buildQueueImages imports the brokers' and test/queueapp's images.
func buildQueueImages(t *testing.T) {
	t.Helper()
	queueImages.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		built, err := cluster.BuildImages(ctx, cluster.ImageOptions{OutDir: t.TempDir(), Tag: version, Version: version,
			Only: []string{"redis", "nats", "queueapp"}}, t.Logf)
		for _, b := range built {
			if b.Note != "" && err == nil {
				err = fmt.Errorf("image %s was not built: %s", b.Name, b.Note)
			}
		}
		queueImages.err = err
	})
	if queueImages.err != nil {
		t.Fatalf("building the queue tests' images: %v", queueImages.err)
	}
}

// queueSplit is one broker's scenario.
type queueSplit struct {
	*fixture
	kind            string
	broker, results cluster.Broker
	env             map[string]string // the workload's queue variables
	qapp            string            // test/queueapp on the laptops
	produced        int
	aliceLive       [2]int // the numbers produced while alice's split lived
	bobLive         [2]int
	movedAt         int    // the last number produced before the operator's pod was deleted
	bobMode         string // steal or mirror
}

func testQueueSplit(t *testing.T, kind string) {
	f := newFixture(t)
	buildQueueImages(t)
	// On JetStream bob mirrors: he gets copies, the deployed consumer
	// still gets every message, and his unconsumed copies are dropped
	// when his session ends.
	q := &queueSplit{fixture: f, kind: kind, bobMode: "steal"}
	if kind == "nats" {
		q.bobMode = "mirror"
	}
	ctx := testContext(t, 10*time.Minute)
	var err error
	if q.results, err = f.c.DeployRedis(ctx, f.ns, "results", version); err != nil {
		t.Fatal(err)
	}
	q.env = map[string]string{"ORDERS_STREAM": "orders", "ORDERS_GROUP": "workers"}
	if kind == "redis" {
		q.broker, err = f.c.DeployRedis(ctx, f.ns, "broker", version)
	} else {
		q.broker, err = f.c.DeployNATS(ctx, f.ns, "broker", version)
		q.env = map[string]string{"ORDERS_STREAM": "ORDERS", "ORDERS_GROUP": "workers", "ORDERS_SUBJECT": "orders.new"}
	}
	if err != nil {
		t.Fatal(err)
	}
	q.qapp = gobuild.Program(t, "github.com/remocal/remocal/test/queueapp", gobuild.Options{Static: true})
	q.grantQueueSplitting()
	// Before any session: the stream, its group and the deployed consumer.
	q.produce(60, 0)
	app := cluster.QueueApp{Name: "orders-worker", Tag: version, Replicas: 2, Broker: q.broker, Results: q.results, Env: q.env}
	if err := f.c.DeployQueueApp(ctx, f.ns, app); err != nil {
		t.Fatal(err)
	}
	q.declareConsumer()
	before := q.brokerState()
	q.awaitConsumed(q.produced)

	alice := f.user("alice", "remocal-user")
	bob := f.user("bob", "remocal-user")
	a := q.developer(alice, "a", "steal")
	q.aliceLive[0] = q.produced + 1
	b := q.developer(bob, "b", q.bobMode)
	q.bobLive[0] = q.produced + 1
	q.awaitRepointed(true)
	q.checkStatus(alice)
	if kind == "redis" {
		q.checkRefusals()
	}

	q.produce(600, 300)
	q.awaitConsumed(q.produced)

	// The operator's pod goes mid-flight; a new one resumes the split.
	leader := f.haLeader()
	procwatch.Start(t, f.c.KubectlCmd(t.Context(), "-n", f.op.ns, "logs", "-f", "--timestamps", leader))
	f.op.kubectl(t, "delete", "pod", leader, "--wait=false")
	q.movedAt = q.produced
	q.produce(600, 100)
	q.awaitConsumed(q.produced)
	if l := f.haLeader(); l == leader {
		t.Fatalf("the deleted operator pod %s still leads", leader)
	}

	// Bob's laptop dies: his session expires, what his queue held goes to
	// the deployed consumer.
	if err := syscall.Kill(-b.Cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.Wait()
	q.bobLive[1] = q.produced
	q.produce(600, 100)
	q.awaitConsumed(q.produced)

	// Alice ends her session; the queue goes back to the workload while
	// the producer runs.
	stop(a)
	q.aliceLive[1] = q.produced
	q.produce(300, 100)
	q.awaitRepointed(false)
	q.awaitConsumed(q.produced)
	q.checkRecords()
	if after := q.brokerState(); after != before {
		t.Errorf("the broker's queues after the split:\n%s\nbefore:\n%s", after, before)
	}
}

// grantQueueSplitting gives the operator its queue-splitting rights in
// the test's namespace as the chart does (queueSplitting.namespaces): the
// Role and RoleBinding helm renders, applied.
func (q *queueSplit) grantQueueSplitting() {
	q.t.Helper()
	out, err := q.c.Helm(q.ctx(), "template", "remocal", chartDir(q.t), "--namespace", q.op.ns,
		"--set", "queueSplitting.namespaces[0].name="+q.ns, "--show-only", "templates/operator-rbac.yaml")
	if err != nil {
		q.t.Fatal(err)
	}
	var docs []string
	for _, doc := range strings.Split(out, "\n---") {
		if strings.Contains(doc, "namespace: "+q.ns+"\n") && (strings.Contains(doc, "kind: Role\n") || strings.Contains(doc, "kind: RoleBinding\n")) {
			docs = append(docs, doc)
		}
	}
	if len(docs) != 2 {
		q.t.Fatalf("helm template rendered %d queue-splitting Role(Binding)s for namespace %s, want 2:\n%s", len(docs), q.ns, out)
	}
	if _, err := q.c.KubectlInput(q.ctx(), strings.Join(docs, "\n---\n"), "apply", "-f", "-"); err != nil {
		q.t.Fatal(err)
	}
}

func (q *queueSplit) declareConsumer() {
	env := `{"stream": "ORDERS_STREAM", "group": "ORDERS_GROUP"}`
	if q.kind == "nats" {
		env = `{"stream": "ORDERS_STREAM", "group": "ORDERS_GROUP", "subject": "ORDERS_SUBJECT"}`
	}
	kind := "redis-streams"
	if q.kind == "nats" {
		kind = "nats-jetstream"
	}
	q.apply(fmt.Sprintf(`{"apiVersion": "queues.remocal.dev/v1alpha1", "kind": "RemocalQueueConsumer",
  "metadata": {"name": "orders-worker"},
  "spec": {"workload": {"kind": "deployment", "name": "orders-worker", "container": %q},
    "queues": [{"name": "orders", "broker": {"kind": %q, "address": %q}, "env": %s}]}}
`, cluster.QueueAppContainer, kind, q.broker.Addr(), env))
}

// produce publishes the next n numbers (rate per second, 0: at once) and
// waits until the producer is done.
func (q *queueSplit) produce(n int, rate int) {
	q.t.Helper()
	name := fmt.Sprintf("produce-%d", q.produced+1)
	p := cluster.QueueApp{Name: name, Tag: version, Produce: true, Broker: q.broker, Env: q.env,
		Args: []string{"-start", fmt.Sprint(q.produced + 1), "-count", fmt.Sprint(n), "-rate", fmt.Sprint(rate)}}
	ctx := testContext(q.t, 3*time.Minute)
	if err := q.c.DeployQueueApp(ctx, q.ns, p); err != nil {
		q.t.Fatal(err)
	}
	if err := q.c.WaitJob(ctx, q.ns, name, 2*time.Minute); err != nil {
		q.t.Fatal(err)
	}
	q.produced += n
}

// developer starts a local copy of the consumer for d, stealing tenant.
func (q *queueSplit) developer(d dev, tenant, mode string) *procwatch.Proc {
	q.t.Helper()
	q.configure(d, fmt.Sprintf(`{"env": {"override": {"WHO": %q}},
  "queueSplits": [{"consumer": "orders-worker", "mode": %q, "filter": {"headers": {"tenant": %q}}}]}`, d.name, mode, tenant))
	p := q.start(d, "deployment/orders-worker", []string{"--no-incoming"}, q.qapp, "consume")
	p.Expect(p.Stderr, "queue orders-worker/orders split for this session")
	return p
}

// checkRefusals: splits the operator must refuse are refused, each with
// what was wrong, and take nothing from alice and bob. Carol steals alice's
// tenant (a conflict), then asks for the whole queue under a policy that
// requires a filter; dave may start sessions but not split queues (RBAC).
func (q *queueSplit) checkRefusals() {
	q.t.Helper()
	refused := func(d dev, split string, wants ...string) {
		q.t.Helper()
		q.configure(d, `{"queueSplits": [`+split+`]}`)
		r := q.exec(d, "deployment/orders-worker", []string{"--no-incoming"}, q.qapp, "results")
		if r.Code == 0 {
			q.t.Fatalf("%s's split %s was not refused", d.name, split)
		}
		for _, want := range wants {
			if !strings.Contains(r.Stderr, want) {
				q.t.Errorf("%s's refused split: stderr lacks %q:\n%s", d.name, want, r.Stderr)
			}
		}
	}
	carol := q.user("carol", "remocal-user")
	refused(carol, `{"consumer": "orders-worker", "mode": "steal", "filter": {"headers": {"tenant": "a"}}}`,
		`queue orders of `+q.ns+`/orders-worker is already stolen with header tenant="a" by alice (session s-`)
	q.apply(`{"apiVersion": "policy.remocal.dev/v1alpha1", "kind": "RemocalPolicy", "metadata": {"name": "filtered-splits"},
  "spec": {"targets": {"names": ["deployment/orders-worker"]}, "queues": {"requireFilter": true}}}
`)
	refused(carol, `{"consumer": "orders-worker", "mode": "mirror"}`,
		"RemocalPolicy "+q.ns+"/filtered-splits denies it (rule queues.requireFilter)")
	q.kubectl("delete", "remocalpolicy", "filtered-splits")
	q.apply(`{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "sessions-only"},
  "rules": [{"apiGroups": ["operator.remocal.dev"], "resources": ["targets", "sessions"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["operator.remocal.dev"], "resources": ["targets/portforward"], "verbs": ["create"]}]}
`)
	dave := q.user("dave")
	q.kubectl("create", "rolebinding", "dave-sessions-only", "--role=sessions-only", "--user=dave")
	refused(dave, `{"consumer": "orders-worker", "mode": "mirror", "filter": {"headers": {"tenant": "c"}}}`,
		"dave may not split the queues of RemocalQueueConsumer "+q.ns+"/orders-worker")
}

// awaitRepointed waits until the workload reads a queue of its own
// (split) or its own queue again, rolled out.
func (q *queueSplit) awaitRepointed(split bool) {
	q.t.Helper()
	err := poll.Until(q.ctx(), 3*time.Minute, func() error {
		raw := q.kubectl("get", "deployment", "orders-worker", "-o", "jsonpath={.spec.template.spec.containers[0].env}")
		var env []struct{ Name, Value string }
		if err := json.Unmarshal([]byte(raw), &env); err != nil {
			return err
		}
		for _, e := range env {
			want, ok := q.env[e.Name]
			// Split, the stream is the deployed consumer's own (the group
			// may keep its name); given back, every variable is as it was.
			if split && e.Name == "ORDERS_STREAM" && e.Value == want || !split && ok && e.Value != want {
				return fmt.Errorf("%s=%s (split %v)", e.Name, e.Value, split)
			}
		}
		status := q.kubectl("get", "remocalqueueconsumer", "orders-worker", "-o", "jsonpath={.status.splits}")
		if !split && status != "" {
			return fmt.Errorf("the consumer's status still records splits: %s", status)
		}
		if _, err := q.c.Kubectl(q.ctx(), "-n", q.ns, "rollout", "status", "deployment/orders-worker", "--timeout=1s"); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		q.t.Fatalf("the workload was not repointed (split %v): %v", split, err)
	}
}

// awaitConsumed waits until n numbers were consumed by their owners (a
// mirroring bob's copies are not the messages).
func (q *queueSplit) awaitConsumed(n int) {
	q.t.Helper()
	err := poll.Until(q.ctx(), 2*time.Minute, func() error {
		recs, err := q.c.QueueRecords(q.ctx(), q.results)
		if err != nil {
			return err
		}
		owned := map[int]bool{}
		for _, r := range recs {
			if r.Who != "bob" || q.bobMode == "steal" {
				owned[r.N] = true
			}
		}
		if len(owned) < n {
			return fmt.Errorf("%d of %d messages consumed", len(owned), n)
		}
		return nil
	})
	if err != nil {
		q.t.Fatal(err)
	}
}

// checkStatus: an administrator sees the split in `remocal operator
// status` (cluster-scoped), the developers in `remocal sessions`.
func (q *queueSplit) checkStatus(d dev) {
	q.t.Helper()
	admin := dev{name: "admin", kubeconfig: q.c.Kubeconfig, local: d.local, project: d.project}
	err := poll.Until(q.ctx(), time.Minute, func() error {
		out := procwatch.Run(q.t, q.remocal(admin, "operator", "status")).Stdout
		for _, want := range []string{q.ns, "orders-worker/orders", "Splitting", "alice (s-", "bob (s-", `header tenant="a"`} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("remocal operator status lacks %q:\n%s", want, out)
			}
		}
		out = procwatch.Run(q.t, q.remocal(d, "sessions", "-n", q.ns)).Stdout
		if !strings.Contains(out, "queue orders-worker/orders steal") {
			return fmt.Errorf("remocal sessions lacks the split:\n%s", out)
		}
		return nil
	})
	if err != nil {
		q.t.Fatal(err)
	}
}

// checkRecords: each number once, at the consumer its tenant and the
// sessions' lives say. A message bob recorded and could not acknowledge
// before his kill comes again to the deployed consumer (consumers are at
// least once); those are the only duplicates allowed.
func (q *queueSplit) checkRecords() {
	q.t.Helper()
	recs, err := q.c.QueueRecords(q.ctx(), q.results)
	if err != nil {
		q.t.Fatal(err)
	}
	tally := queuerecord.Count(recs)
	var problems []string
	counts := map[string]int{}
	drained := 0        // a developer's messages the deployed consumer got when the session ended
	aliceAfterMove := 0 // alice's messages produced after the operator's pod was deleted
	mirrored := 0       // bob's copies (mirror mode)
	for n := 1; n <= q.produced; n++ {
		who := tally[n]
		for _, w := range who {
			counts[w]++
		}
		tenant := []string{"a", "b", "c"}[(n-1)%3]
		aliceLived := tenant == "a" && n >= q.aliceLive[0] && n <= q.aliceLive[1]
		bobLived := tenant == "b" && n >= q.bobLive[0] && n <= q.bobLive[1]
		switch {
		case len(who) == 0:
			problems = append(problems, fmt.Sprintf("%d (tenant %s) never consumed", n, tenant))
		case q.bobMode == "mirror" && tenant == "b" && !slices.Contains(who, "deployed"):
			problems = append(problems, fmt.Sprintf("%d (tenant b) consumed by %v: bob only mirrors, the deployed consumer must get it", n, who))
		case q.bobMode == "mirror" && len(who) == 2 && slices.Contains(who, "bob") && bobLived:
			mirrored++
		case len(who) == 2 && slices.Equal(who, []string{"bob", "deployed"}) && n <= q.bobLive[1]:
			q.t.Logf("message %d: recorded by bob before his kill and redelivered to the deployed consumer", n)
		case len(who) > 1:
			problems = append(problems, fmt.Sprintf("%d consumed %d times: %v", n, len(who), who))
		case who[0] == "alice" && !aliceLived, who[0] == "bob" && !bobLived:
			problems = append(problems, fmt.Sprintf("%d (tenant %s) consumed by %s", n, tenant, who[0]))
		case who[0] == "deployed" && (aliceLived || bobLived && q.bobMode == "steal"):
			// Routed to the developer and not consumed before the session
			// ended: its queue drained to the deployed consumer.
			drained++
		case who[0] == "alice" && n > q.movedAt:
			aliceAfterMove++
		}
	}
	q.t.Logf("consumed: %v of %d produced; %d of the developers' messages drained to the deployed consumer when their sessions ended; alice consumed %d produced after the operator's pod was deleted; bob (%s) got %d copies",
		counts, q.produced, drained, aliceAfterMove, q.bobMode, mirrored)
	if q.bobMode == "mirror" && mirrored == 0 {
		problems = append(problems, "bob mirrored tenant=b and got no copy")
	}
	if aliceAfterMove == 0 {
		problems = append(problems, "alice consumed nothing produced after the operator's pod was deleted: the split was not resumed for her")
	}
	if len(tally) != q.produced {
		problems = append(problems, fmt.Sprintf("%d distinct numbers consumed, %d produced", len(tally), q.produced))
	}
	if counts["alice"] == 0 || counts["bob"] == 0 {
		problems = append(problems, fmt.Sprintf("alice consumed %d, bob %d: each should have some", counts["alice"], counts["bob"]))
	}
	if len(problems) > 0 {
		q.t.Fatalf("%d problems, the first: %s", len(problems), strings.Join(problems[:min(len(problems), 20)], "; "))
	}
}

// brokerState lists the broker's queues, groups and consumers, read
// through a port forward on loopback.
func (q *queueSplit) brokerState() string {
	q.t.Helper()
	ctx := q.ctx()
	addr, stopForward, err := q.c.PortForward(ctx, q.broker.Namespace, "svc/"+q.broker.Name, q.broker.Port)
	if err != nil {
		q.t.Fatal(err)
	}
	defer stopForward()
	var lines []string
	if q.kind == "redis" {
		lines, err = redisState(ctx, addr)
	} else {
		lines, err = natsState(ctx, addr)
	}
	if err != nil {
		q.t.Fatal(err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// redisState: every key with its type, every stream's groups, and the
// consumers remocal made (the workload's are its pods' host names, which
// rollouts change).
func redisState(ctx context.Context, addr string) ([]string, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second})
	defer rdb.Close()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, k := range keys {
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			return nil, err
		}
		lines = append(lines, "key "+k+" "+typ)
		if typ != "stream" {
			continue
		}
		groups, err := rdb.XInfoGroups(ctx, k).Result()
		if err != nil {
			return nil, err
		}
		for _, g := range groups {
			lines = append(lines, "group "+k+" "+g.Name)
			cs, err := rdb.XInfoConsumers(ctx, k, g.Name).Result()
			if err != nil {
				return nil, err
			}
			for _, c := range cs {
				if strings.HasPrefix(c.Name, "remocal") {
					lines = append(lines, "consumer "+k+" "+g.Name+" "+c.Name)
				}
			}
		}
	}
	return lines, nil
}

// natsState: every stream and its consumers.
func natsState(ctx context.Context, addr string) ([]string, error) {
	nc, err := nats.Connect("nats://"+addr, nats.NoReconnect(), nats.Timeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	var lines []string
	streams := js.ListStreams(ctx)
	for info := range streams.Info() {
		lines = append(lines, "stream "+info.Config.Name+" "+strings.Join(info.Config.Subjects, ","))
		st, err := js.Stream(ctx, info.Config.Name)
		if err != nil {
			return nil, err
		}
		cs := st.ListConsumers(ctx)
		for ci := range cs.Info() {
			lines = append(lines, "consumer "+info.Config.Name+" "+ci.Name)
		}
		if err := cs.Err(); err != nil {
			return nil, err
		}
	}
	return lines, streams.Err()
}
