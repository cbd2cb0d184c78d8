package operator

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/remocal/remocal/protocol/operator"
)

// nightly is a CronJob that never runs by its schedule: the test runs it
// by hand (kubectl create job --from), as a developer does to debug it.
// Its job's pod runs the inventory app with an environment of its own.
const nightly = `apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 1 1 *"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {app: nightly}}
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: app
            image: remocal.local/examples/inventory:dev
            imagePullPolicy: IfNotPresent
            env:
            - {name: GREETING, value: hello from the nightly run}
            readinessProbe:
              httpGet: {path: /healthz, port: 8080}
              periodSeconds: 1
`

// A CronJob is a target through the operator: the session reaches the pod
// of its latest job, and the operator lists that pod as the target's.
func TestCronJobTarget(t *testing.T) {
	f := newFixture(t)
	f.apply(nightly)
	f.kubectl("create", "job", "nightly-manual", "--from=cronjob/nightly")
	f.kubectl("wait", "--for=condition=Ready", "--timeout=90s", "pods", "-l", "batch.kubernetes.io/job-name=nightly-manual")
	pods := f.pods("batch.kubernetes.io/job-name=nightly-manual")
	if len(pods) != 1 {
		t.Fatalf("the job's pods: %+v", pods)
	}
	alice := f.user("alice", "remocal-user")

	out, err := f.c.As(alice.kubeconfig).Kubectl(f.ctx(), "-n", f.ns, "get", "targets", "cronjob.nightly", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var target operator.Target
	if err := json.Unmarshal([]byte(out), &target); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !target.Status.Ready || !slices.Equal(target.Status.Pods, []string{pods[0].name}) || target.Spec.Kind != "cronjob" {
		t.Errorf("alice sees the target as %+v; want cronjob nightly ready with pod %s", target, pods[0].name)
	}

	r := f.exec(alice, "cronjob/nightly", []string{"--no-incoming"}, f.probe(), "env=GREETING")
	if r.Code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.Code, r.Stderr)
	}
	if connectedLine.FindStringSubmatch(r.Stderr) == nil {
		t.Errorf("remocal did not say it went through the operator:\n%s", r.Stderr)
	}
	mustContain(t, "stdout", r.Stdout, "env GREETING=hello from the nightly run")
	mustContain(t, "stderr", r.Stderr, pods[0].name)
}
