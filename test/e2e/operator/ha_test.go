package operator

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/procwatch"
)

// haRounds is how many times the leader is deleted under one session.
const haRounds = 5

var reconnectedLine = regexp.MustCompile(`reconnected to the operator \(session (s-[a-z0-9]+)\) after`)

// A session survives the deletion of the operator's leader pod: with two
// replicas, alice steals her requests to a Deployment through the
// operator; the leader's pod is deleted (it releases its Lease and cuts
// its sessions without ending them), the follower leads, and alice's
// remocal reconnects, naming its session, and steals again. Measured: the
// time from the delete to alice's requests reaching her laptop again.
func TestSessionSurvivesLeaderDeletion(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	f.haReplicas(2)

	// The configuration alice's project starts with (f.user writes it).
	f.writeConfig(`{"network": {"incoming": {"mode": "steal", "httpFilter": {"headers": {"X-Remocal-User": "alice"}}}}}`)
	alice := f.user("alice", "remocal-user")
	a := f.start(alice, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
	session := connectedLine.FindStringSubmatch(a.Expect(a.Stderr, "connected through the operator"))[1]
	a.Expect(a.Stderr, `stealing port 8080 of the target where header X-Remocal-User="alice"`)
	if body, err := f.get(appURL(pod, "/mine"), "X-Remocal-User: alice"); body != "local probe" {
		t.Fatalf("before the handover alice's request got %q (%v)", body, err)
	}

	agentJobs := func() string {
		return f.op.kubectl(t, "get", "jobs", "-l", "remocal.dev/operator-agent=true", "-o", "jsonpath={.items[*].metadata.uid}")
	}
	jobs := agentJobs()
	var took []time.Duration
	for round := range haRounds {
		leader := f.haLeader()
		f.haWaitFollower(leader)
		// The leader's log to its end, for the record of its shutdown.
		procwatch.Start(t, f.c.KubectlCmd(t.Context(), "-n", f.op.ns, "logs", "-f", "--timestamps", leader))
		deleted := time.Now()
		f.op.kubectl(t, "delete", "pod", leader, "--wait=false")
		// The stopping leader cuts the session's connection (its
		// requests go to the application meanwhile) ...
		a.Expect(a.Stderr, "lost the connection to the operator (session "+session+")")
		cut := time.Since(deleted)
		// ... and the client reconnects to the new leader and steals
		// again.
		err := poll.Until(f.ctx(), 60*time.Second, func() error {
			body, err := f.get(appURL(pod, "/mine"), "X-Remocal-User: alice")
			if err != nil {
				return err
			}
			if body != "local probe" {
				return fmt.Errorf("alice's request got %q", body)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: after deleting the leader %s, alice's requests did not come back: %v", round+1, leader, err)
		}
		d := time.Since(deleted)
		took = append(took, d)
		// Within the Lease's duration (15 s): the stopping leader
		// released it, nobody waited for it to expire.
		if d > 15*time.Second {
			t.Errorf("round %d: the session's traffic came back only %v after the leader's deletion", round+1, d.Round(10*time.Millisecond))
		}
		line := a.Expect(a.Stderr, "reconnected to the operator")
		if m := reconnectedLine.FindStringSubmatch(line); m == nil || m[1] != session {
			t.Errorf("round %d: %q, want the session %s", round+1, line, session)
		}
		a.Expect(a.Stderr, `stealing port 8080 of the target where header X-Remocal-User="alice"`)
		now := f.haLeader()
		if now == leader {
			t.Errorf("round %d: %s still leads after its pod was deleted", round+1, leader)
		}
		if st := f.op.kubectl(t, "get", "operatorstatus", "operator", "-o", "jsonpath={.status.leader} {.status.self}"); st != now+" "+now {
			t.Errorf("round %d: the operator's status says leader and self %q, want %s", round+1, st, now)
		}
		avail := f.op.kubectl(t, "get", "apiservice", apiService, "-o",
			`jsonpath={.status.conditions[?(@.type=="Available")].status} since {.status.conditions[?(@.type=="Available")].lastTransitionTime}`)
		t.Logf("round %d: leader %s deleted at %s; the session's connection cut after %s; %s leads; alice's requests reached her laptop again after %s (%s); APIService Available %s",
			round+1, leader, deleted.UTC().Format(time.TimeOnly), cut.Round(10*time.Millisecond), now, d.Round(10*time.Millisecond), line, avail)
	}
	// The new leaders joined the agent that ran; none started another.
	if now := agentJobs(); now != jobs || jobs == "" {
		t.Errorf("the agent Jobs were %q before the handovers, %q after", jobs, now)
	}
	// The usage report outlives its leaders (the ConfigMap
	// remocal-operator-usage): each leader counted alice's session once
	// (the first started it, the others adopted it); in one leader's
	// memory there would be just one.
	err := poll.Until(f.ctx(), 45*time.Second, func() error {
		var st operator.OperatorStatus
		if err := json.Unmarshal([]byte(f.op.kubectl(t, "get", "operatorstatus", "operator", "-o", "json")), &st); err != nil {
			return err
		}
		for _, u := range st.Status.Usage {
			if u.User == "alice" && u.Namespace == f.ns && u.Target == "deployment/inventory" && u.Sessions >= 2 {
				return nil
			}
		}
		return fmt.Errorf("the usage after %d handovers lacks alice's session counted by more than one leader: %+v", haRounds, st.Status.Usage)
	})
	if err != nil {
		t.Error(err)
	}
	for _, s := range f.sessions() {
		if s.Spec.User.Username == "alice" && s.Name != session {
			t.Errorf("alice has session %s besides %s", s.Name, session)
		}
	}
	for _, l := range a.Lines() {
		if strings.Contains(l, "session.ended") || strings.Contains(l, " ended: ") {
			t.Errorf("the session was ended, not handed over: %s", l)
		}
	}
	t.Logf("from the leader's deletion to the session's traffic flowing again: %v", took)
	syscall.Kill(-a.Cmd.Process.Pid, syscall.SIGINT)
	a.Wait()
}

// haReplicas scales the shared operator to n replicas for the test and
// back to what it was after; it waits for n running pods, one leading.
func (f *fixture) haReplicas(n int) {
	f.t.Helper()
	was := f.op.kubectl(f.t, "get", "deployment", "remocal-operator", "-o", "jsonpath={.spec.replicas}")
	f.op.kubectl(f.t, "scale", "deployment", "remocal-operator", fmt.Sprintf("--replicas=%d", n))
	f.t.Cleanup(func() {
		f.op.kubectl(f.t, "scale", "deployment", "remocal-operator", "--replicas="+was)
	})
	err := poll.Until(f.ctx(), 2*time.Minute, func() error {
		if pods := f.haOperatorPods(); len(pods) != n {
			return fmt.Errorf("%d operator pods running (%v), want %d", len(pods), pods, n)
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.haLeader()
}

// haOperatorPods lists the operator's running pods not being deleted.
func (f *fixture) haOperatorPods() []string {
	out := f.op.kubectl(f.t, "get", "pods", "-l", "app.kubernetes.io/name=remocal-operator", "--field-selector=status.phase=Running",
		"-o", `jsonpath={range .items[*]}{.metadata.name} deleting={.metadata.deletionTimestamp}{"\n"}{end}`)
	var pods []string
	for _, line := range strings.Split(out, "\n") {
		if fs := strings.Fields(line); len(fs) == 2 && fs[1] == "deleting=" {
			pods = append(pods, fs[0])
		}
	}
	return pods
}

// haLeader waits for a leader (the Lease's holder, a running pod that is
// ready) and returns its pod's name.
func (f *fixture) haLeader() string {
	f.t.Helper()
	var leader string
	err := poll.Until(f.ctx(), 90*time.Second, func() error {
		leader = f.op.kubectl(f.t, "get", "lease", "remocal-operator", "-o", "jsonpath={.spec.holderIdentity}")
		if leader == "" {
			return fmt.Errorf("nobody holds the Lease")
		}
		ready := f.op.kubectl(f.t, "get", "pod", leader, "--ignore-not-found", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if ready != "True" {
			return fmt.Errorf("the leader %s is not ready (%q)", leader, ready)
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return leader
}

// haWaitFollower waits until a replica other than leader runs, not ready
// (it stands by).
func (f *fixture) haWaitFollower(leader string) {
	f.t.Helper()
	err := poll.Until(f.ctx(), 2*time.Minute, func() error {
		for _, p := range f.haOperatorPods() {
			if p == leader {
				continue
			}
			ready := f.op.kubectl(f.t, "get", "pod", p, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			if ready == "False" {
				return nil
			}
			return fmt.Errorf("the follower %s: ready %q, want False (only the leader is ready)", p, ready)
		}
		return fmt.Errorf("no follower beside the leader %s", leader)
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// kubectl runs kubectl as cluster-admin in the operator's namespace.
func (in *install) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	ctx := testContext(t, 2*time.Minute)
	out, err := in.c.Kubectl(ctx, append([]string{"-n", in.ns}, args...)...)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(out)
}
