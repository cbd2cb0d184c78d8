package kube

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// projectConfig makes the example's config directory remote: /etc stays
// local by default.
const projectConfig = `{"fs": {"remote": ["/etc/inventory"]}}`

// deployInventory runs the Go HTTP API example with replicas pods.
func (f *fixture) deployInventory(replicas int) {
	f.t.Helper()
	f.applyExample("inventory")
	if replicas != 2 {
		f.kubectl("scale", "deployment/inventory", "--replicas="+strconv.Itoa(replicas))
	}
	f.rollout("deployment/inventory")
}

var chosenPod = regexp.MustCompile(`this session uses (\S+)`)

// Everything a local program sees of a Deployment's pod: its variables,
// its files, its hostname, cluster DNS (short and fully qualified names),
// and its network (a ClusterIP Service and another pod's IP), with the
// choice among several replicas explained.
func TestExecOnDeployment(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(projectConfig)
	f.deployInventory(2)
	pods := f.pods("app=inventory")
	clusterIP := f.kubectl("get", "service", "inventory", "-o", "jsonpath={.spec.clusterIP}")
	fqdn := "inventory." + f.ns + ".svc.cluster.local"

	r := f.exec("deploy/inventory", []string{"--no-incoming"}, f.probe(),
		"env=GREETING", "read=/etc/inventory/config.json", "hostname",
		"resolve=inventory", "resolve="+fqdn, "get=http://inventory/healthz", "get=http://"+fqdn+"/healthz")
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	m := chosenPod.FindStringSubmatch(r.Stderr)
	if m == nil {
		t.Fatalf("with 2 replicas remocal must say which pod it uses:\n%s", r.Stderr)
	}
	mustContain(t, "stderr", r.Stderr, "deployment/inventory has 2 running pods", "(the oldest)", "the other pods serve as before")
	mustContain(t, "stdout", r.Stdout,
		"env GREETING=hello from the cluster",
		`read /etc/inventory/config.json: {`,
		"hostname "+m[1],
		"resolve inventory: "+clusterIP,
		"resolve "+fqdn+": "+clusterIP,
		"get http://inventory/healthz: 200 ok",
		"get http://"+fqdn+"/healthz: 200 ok",
	)

	// The other replica, by pod IP.
	var other podInfo
	for _, p := range pods {
		if p.name != m[1] {
			other = p
		}
	}
	r = f.exec("deploy/inventory", []string{"--no-incoming"}, f.probe(), "get=http://"+other.ip+":8080/healthz")
	mustContain(t, "stdout", r.Stdout, "get http://"+other.ip+":8080/healthz: 200 ok")
	// The second session found the first one's agent.
	mustContain(t, "stderr", r.Stderr, "using the running agent")
}

// Without remocal, the laptop reaches nothing of the cluster: what the
// test above sees comes through remocal, not through the host.
func TestLaptopAloneReachesNothing(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	pod := f.pods("app=inventory")[0]
	cmd := f.local.Command(f.ctx(), f.probe(), "get=http://"+pod.ip+":8080/healthz")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "network is unreachable") {
		t.Fatalf("the local side reached a pod without remocal (err %v): %s", err, out)
	}
}

// A targetless session has the cluster's network and DNS (the agent pod's
// namespace search path) but nothing of any workload.
func TestTargetless(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	r := f.exec("targetless", nil, f.probe(), "env=GREETING", "get=http://inventory/healthz", "read=/etc/resolv.conf")
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	mustContain(t, "stdout", r.Stdout, "env GREETING=\n", "get http://inventory/healthz: 200 ok", "search "+f.ns+".svc.cluster.local")
}

// A target running as an unprivileged user (most hardened images): the
// agent still reads its environment and files (it needs SYS_PTRACE for
// that, docs/kubernetes.md), and file access is judged as that user: a
// Secret only root may read is unreadable locally too.
func TestNonRootTarget(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(`{"fs": {"remote": ["/etc/inventory", "/etc/private"]}}`)
	f.apply(`apiVersion: v1
kind: Secret
metadata: {name: private}
stringData: {key: only-root-reads-this}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: inventory-config}
data: {config.json: '{"region": "nonroot"}'}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nonroot}
spec:
  replicas: 1
  selector: {matchLabels: {app: nonroot}}
  template:
    metadata: {labels: {app: nonroot}}
    spec:
      securityContext: {runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true}
      containers:
      - name: app
        image: remocal.local/examples/inventory:dev
        imagePullPolicy: IfNotPresent
        env: [{name: GREETING, value: hello as uid 1000}]
        volumeMounts:
        - {name: config, mountPath: /etc/inventory}
        - {name: private, mountPath: /etc/private}
      volumes:
      - {name: config, configMap: {name: inventory-config}}
      - {name: private, secret: {secretName: private, defaultMode: 0400}}
`)
	f.rollout("deployment/nonroot")
	r := f.exec("deploy/nonroot", []string{"--no-incoming"}, f.probe(),
		"env=GREETING", "read=/etc/inventory/config.json", "read=/etc/private/key")
	if r.Code != 1 { // the probe stops at the unreadable file
		t.Fatalf("exit %d, want the probe's 1 for the unreadable Secret", r.Code)
	}
	mustContain(t, "stdout", r.Stdout,
		"env GREETING=hello as uid 1000",
		`read /etc/inventory/config.json: {"region": "nonroot"}`,
		"read: ERROR open /etc/private/key: permission denied",
	)
}
