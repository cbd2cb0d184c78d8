package kube

import (
	"strings"
	"testing"
)

// failing runs a session that must fail before the program starts and
// returns remocal's error.
func (f *fixture) failing(target string, flags ...string) string {
	f.t.Helper()
	r := f.exec(target, append([]string{"--no-incoming"}, flags...), f.probe(), "hostname")
	if r.Code == 0 || strings.Contains(r.Stdout, "hostname") {
		f.t.Fatalf("the session started (exit %d)", r.Code)
	}
	return r.Stderr
}

// noAgentJobs checks a failed start left no agent behind.
func (f *fixture) noAgentJobs() {
	f.t.Helper()
	if jobs := f.kubectl("get", "jobs", "-l", "app.kubernetes.io/name=remocal-agent", "-o", "name"); jobs != "" {
		f.t.Errorf("a failed start left agent Jobs behind: %s", jobs)
	}
}

func TestAgentImageCannotBePulled(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	f.writeConfig(`{"agent": {"image": "remocal.local/agent:does-not-exist"}}`)
	msg := f.failing("deployment/inventory")
	mustContain(t, "error", msg, "the agent image remocal.local/agent:does-not-exist cannot be pulled on node", "ErrImagePull", "set agent.image")
	f.noAgentJobs()
}

func TestAgentStartupTimeoutShowsEvents(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	f.writeConfig(`{"agent": {"startupTimeout": "300ms"}}`)
	msg := f.failing("deployment/inventory")
	// 300 ms ends the wait before or after the Job's pod appears: either
	// way the message says what it waited for and how to wait longer; with
	// a pod, it shows the pod's events.
	switch {
	case strings.Contains(msg, "did not start within 300ms"):
		mustContain(t, "error", msg, "its events:")
	case strings.Contains(msg, "no agent pod appeared in namespace "+f.ns+" within 300ms"):
		mustContain(t, "error", msg, "kubectl -n "+f.ns+" describe jobs")
	default:
		t.Errorf("error does not say the agent did not start in time:\n%s", msg)
	}
	mustContain(t, "error", msg, "raise agent.startupTimeout")
	f.noAgentJobs()
}

func TestAgentPodRejectedByNode(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	f.writeConfig(`{"agent": {"resources": {"requests": {"cpu": "500"}}}}`)
	msg := f.failing("deployment/inventory")
	mustContain(t, "error", msg, "failed on node", "OutOfcpu", "agent.resources")
	f.noAgentJobs()
}

func TestContainerNotFound(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	msg := f.failing("deployment/inventory/container/nope")
	mustContain(t, "error", msg, `container "nope"`, "app")
}

func TestTargetNotFoundOrNotRunning(t *testing.T) {
	f := newFixture(t)
	msg := f.failing("deployment/nothing-here")
	mustContain(t, "error", msg, "deployment", "nothing-here", "not found", f.ns)

	f.apply(`apiVersion: v1
kind: Pod
metadata: {name: stuck}
spec:
  containers: [{name: app, image: remocal.local/nothing:v1, imagePullPolicy: IfNotPresent}]
`)
	msg = f.failing("pod/stuck")
	mustContain(t, "error", msg, "stuck", "not running")
}

// A user whose RBAC allows reading workloads but not creating the agent's
// Job is told which permission is missing.
func TestInsufficientRBAC(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	f.apply(`apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list, watch]}
- {apiGroups: [apps], resources: [deployments, replicasets], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader}
subjects: [{kind: ServiceAccount, name: reader}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
`)
	token := f.kubectl("create", "token", "reader")
	f.kubeconfig = f.c.TokenKubeconfig(t, "reader", token, f.ns)
	msg := f.failing("deployment/inventory")
	mustContain(t, "error", msg, "create", "jobs.batch", f.ns, "docs/kubernetes.md")
}

// A namespace whose Pod Security level forbids what the agent needs
// (hostPID, capabilities): the Job's pod is never created. remocal says
// so at once, with the admission's reason and what to do, and leaves no
// Job behind.
func TestAgentForbiddenByPodSecurity(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	f.kubectl("label", "namespace", f.ns, "pod-security.kubernetes.io/enforce=baseline")
	// A startup timeout far beyond the run's patience: only a refusal
	// reported as it happens lets the run end in time.
	f.writeConfig(`{"agent": {"startupTimeout": "10m"}}`)
	msg := f.failing("deployment/inventory")
	mustContain(t, "error", msg, "PodSecurity", "baseline", "hostPID", "agent.namespace")
	f.noAgentJobs()

	// As an ephemeral container the refusal comes from the API call; it
	// is the namespace's, not a missing permission.
	f.writeConfig(`{"agent": {"ephemeral": true, "startupTimeout": "10m"}}`)
	msg = f.failing("deployment/inventory")
	mustContain(t, "ephemeral error", msg, "refuses the agent", "PodSecurity", "agent.namespace")
	if strings.Contains(msg, "your Kubernetes account may not") {
		t.Errorf("a Pod Security refusal was reported as missing RBAC:\n%s", msg)
	}
}
