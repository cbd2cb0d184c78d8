package operator

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// A session on a Deployment receives the traffic of every replica, of the
// replicas added while it runs too, and survives a scale-down.
func TestSessionOnEveryReplica(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(3)
	alice := f.user("alice", "remocal-user")
	f.configure(alice, `{"network": {"incoming": {"mode": "steal"}}}`)
	r := f.start(alice, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
	r.Expect(r.Stderr, "stealing port 8080")

	seen := map[string]bool{}
	each := func(phase string) {
		t.Helper()
		for _, p := range f.pods("app=inventory") {
			path := fmt.Sprintf("/%s-%s", phase, p.name)
			if !seen[p.name] {
				// A new replica's agent starts in the background.
				f.getUntil(appURL(p, path), "local probe")
				seen[p.name] = true
			} else if body := f.mustGet(appURL(p, path)); body != "local probe" {
				t.Errorf("a request to replica %s got %q, want the session's answer", p.name, body)
			}
			r.Expect(r.Stdout, "request GET "+path)
		}
	}
	each("three")
	if len(seen) != 3 {
		t.Fatalf("%d replicas reached, want 3", len(seen))
	}

	before := f.pods("app=inventory")
	start := time.Now()
	f.kubectl("scale", "deployment/inventory", "--replicas=5")
	f.kubectl("rollout", "status", "deployment/inventory", "--timeout=90s")
	each("five")
	t.Logf("scaled to 5: the new replicas' traffic reached the session %s after the scale", time.Since(start).Round(100*time.Millisecond))
	if len(seen) != 5 {
		t.Fatalf("%d replicas reached, want 5", len(seen))
	}

	f.kubectl("scale", "deployment/inventory", "--replicas=3")
	f.kubectl("rollout", "status", "deployment/inventory", "--timeout=90s")
	f.waitPods("app=inventory", 3)
	each("back-to-three")
	if gone := slices.DeleteFunc(before, func(p podInfo) bool { return slices.Contains(f.pods("app=inventory"), p) }); len(gone) > 0 {
		t.Logf("scale-down removed %d of the original replicas", len(gone))
	}
}

// A StatefulSet is a target like a Deployment.
func TestSessionOnStatefulSet(t *testing.T) {
	f := newFixture(t)
	f.apply(`apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: app
        image: remocal.local/examples/inventory:dev
        imagePullPolicy: IfNotPresent
        env: [{name: GREETING, value: hello from a statefulset}]
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
`)
	f.kubectl("rollout", "status", "statefulset/db", "--timeout=90s")
	alice := f.user("alice", "remocal-user")
	f.configure(alice, `{"network": {"incoming": {"mode": "steal"}}}`)
	r := f.start(alice, "statefulset/db", nil, f.probe(), "env=GREETING", "serve-all=:8080")
	r.Expect(r.Stdout, "env GREETING=hello from a statefulset")
	r.Expect(r.Stderr, "stealing port 8080")
	for _, p := range f.pods("app=db") {
		f.getUntil(appURL(p, "/"+p.name), "local probe")
		r.Expect(r.Stdout, "request GET /"+p.name)
	}
}

// A rollout replaces every pod, the primary among them: the session
// follows, and the new pods' traffic reaches it.
func TestSessionFollowsARollout(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(2)
	old := f.pods("app=inventory")
	alice := f.user("alice", "remocal-user")
	f.configure(alice, `{"fs": {"remote": ["/etc/inventory"]}, "network": {"incoming": {"mode": "steal"}}}`)
	r := f.start(alice, "deployment/inventory", nil, f.probe(), "serve-all=:8080")
	r.Expect(r.Stderr, "stealing port 8080")
	// A second session reads files and dials after the rollout, when
	// its primary pod is gone.
	later := f.start(alice, "deployment/inventory", []string{"--no-incoming"}, f.probe(),
		"wait", "read=/etc/inventory/config.json", "get=http://inventory/healthz")
	later.Expect(later.Stdout, "waiting")

	f.kubectl("rollout", "restart", "deployment/inventory")
	f.kubectl("rollout", "status", "deployment/inventory", "--timeout=90s")
	f.waitPods("app=inventory", 2)
	for _, p := range f.pods("app=inventory") {
		if slices.Contains(old, p) {
			t.Fatalf("pod %s survived the rollout", p.name)
		}
		f.getUntil(appURL(p, "/after-"+p.name), "local probe")
		r.Expect(r.Stdout, "request GET /after-"+p.name)
	}
	if _, err := later.Stdin.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	later.Expect(later.Stdout, "read /etc/inventory/config.json: {")
	// The Service's pods answer through the first session's steal.
	later.Expect(later.Stdout, "get http://inventory/healthz: 200 local probe")
	if code := later.Wait(); code != 0 {
		t.Errorf("the session whose primary went away: exit %d", code)
	}
}

// A Job is a target like a Deployment.
func TestSessionOnJob(t *testing.T) {
	f := newFixture(t)
	f.apply(`apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  template:
    metadata: {labels: {app: batch}}
    spec:
      restartPolicy: Never
      containers:
      - name: app
        image: remocal.local/examples/inventory:dev
        imagePullPolicy: IfNotPresent
        env: [{name: GREETING, value: hello from a job}]
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
`)
	f.waitPods("app=batch", 1) // kubectl wait fails while there is no pod yet
	f.kubectl("wait", "pod", "-l", "app=batch", "--for=condition=Ready", "--timeout=90s")
	alice := f.user("alice", "remocal-user")
	f.configure(alice, `{"network": {"incoming": {"mode": "steal"}}}`)
	r := f.start(alice, "job/batch", nil, f.probe(), "env=GREETING", "serve-all=:8080")
	r.Expect(r.Stdout, "env GREETING=hello from a job")
	r.Expect(r.Stderr, "stealing port 8080")
	p := f.pods("app=batch")[0]
	f.getUntil(appURL(p, "/job"), "local probe")
	r.Expect(r.Stdout, "request GET /job")
}
