package kube

import (
	"fmt"
	"strings"
	"testing"

	"github.com/remocal/remocal/test/cluster"
)

// Every kind of target reaches the pod it should, and a pod's sidecar is
// skipped unless named.
func TestTargetKinds(t *testing.T) {
	f := newFixture(t)
	container := func(name, who string) string {
		return fmt.Sprintf(`{name: %s, image: %s, imagePullPolicy: Never, args: [sleep], env: [{name: WHO, value: %s}]}`, name, cluster.ToolboxImage, who)
	}
	template := func(label, who string) string {
		return fmt.Sprintf(`
    metadata: {labels: {app: %s}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [%s]`, label, container("main", who))
	}
	f.apply(fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:%s
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec:
  replicas: 1
  selector: {matchLabels: {app: rs}}
  template:%s
---
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  template:%s
      restartPolicy: Never
---
apiVersion: batch/v1
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
          terminationGracePeriodSeconds: 0
          containers: [%s]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  selector: {app: db}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: meshed, labels: {tier: meshed}}
spec:
  terminationGracePeriodSeconds: 0
  containers: [%s, %s]
`, template("db", "statefulset"), template("rs", "replicaset"), template("batch", "job"),
		container("main", "cronjob"), container("istio-proxy", "sidecar"), container("app", "app")))
	f.kubectl("create", "job", "nightly-manual", "--from=cronjob/nightly")
	f.rollout("statefulset/db")
	for _, w := range []string{"pod/meshed", "job/batch", "job/nightly-manual", "replicaset/rs"} {
		f.kubectl("wait", "--for=condition=Ready", "--timeout=90s", "pods", "-l", map[string]string{
			"pod/meshed": "tier=meshed", "job/batch": "batch.kubernetes.io/job-name=batch",
			"job/nightly-manual": "batch.kubernetes.io/job-name=nightly-manual", "replicaset/rs": "app=rs"}[w])
	}
	for target, want := range map[string]string{
		"statefulset/db":                   "statefulset",
		"sts/db":                           "statefulset",
		"replicaset/rs":                    "replicaset",
		"job/batch":                        "job",
		"cronjob/nightly":                  "cronjob",
		"service/db":                       "statefulset",
		"selector/app=rs":                  "replicaset",
		"pod/meshed":                       "app",
		"pod/meshed/container/istio-proxy": "sidecar",
	} {
		t.Run(strings.ReplaceAll(target, "/", "_"), func(t *testing.T) {
			f := f.with(t)
			r := f.exec(target, []string{"--no-incoming"}, f.probe(), "env=WHO")
			if !strings.Contains(r.Stdout, "env WHO="+want+"\n") {
				t.Errorf("%s reached %q, want the %s container", target, r.Stdout, want)
			}
		})
	}
}
