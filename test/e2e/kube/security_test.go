package kube

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/poll"
)

// The agent's pod has what docs/kubernetes.md says and nothing more, as
// the kernel sees its process: six capabilities, no new privileges, the
// runtime's seccomp filter, a root filesystem it cannot write. Sessions
// still read a root target's file that belongs to another user, which
// needs DAC_OVERRIDE (the non-root target's case is TestNonRootTarget).
func TestAgentPodHardened(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(`{"fs": {"remote": ["/shared"]}}`)
	// A root target with a file only uid 1000 may read (as root may).
	f.apply(`apiVersion: apps/v1
kind: Deployment
metadata: {name: rootapp}
spec:
  replicas: 1
  selector: {matchLabels: {app: rootapp}}
  template:
    metadata: {labels: {app: rootapp}}
    spec:
      initContainers:
      - name: write
        image: remocal.local/examples/postgres:dev
        imagePullPolicy: IfNotPresent
        securityContext: {runAsUser: 1000, runAsGroup: 1000}
        command: [/bin/dash, -c, 'umask 077 && echo belongs-to-uid-1000 > /shared/mine']
        volumeMounts: [{name: shared, mountPath: /shared}]
      containers:
      - name: app
        image: remocal.local/examples/inventory:dev
        imagePullPolicy: IfNotPresent
        volumeMounts: [{name: shared, mountPath: /shared}]
      volumes: [{name: shared, emptyDir: {}}]
`)
	f.rollout("deployment/rootapp")
	// The agent outlives the session (agent.idleTTL): it is looked at
	// afterwards.
	r := f.exec("deploy/rootapp", []string{"--no-incoming"}, f.probe(), "read=/shared/mine")
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	mustContain(t, "stdout", r.Stdout, "read /shared/mine: belongs-to-uid-1000")

	pod := f.kubectl("get", "pods", "-l", "app.kubernetes.io/name=remocal-agent", "-o", "jsonpath={.items[0].metadata.name}")
	sc := f.kubectl("get", "pod", pod, "-o", "jsonpath={.spec.containers[0].securityContext}")
	mustContain(t, "the agent's securityContext", sc, `"drop":["ALL"]`, `"add":["DAC_OVERRIDE","NET_ADMIN","SETGID","SETUID","SYS_ADMIN","SYS_PTRACE"]`,
		`"allowPrivilegeEscalation":false`, `"readOnlyRootFilesystem":true`, `"seccompProfile":{"type":"RuntimeDefault"}`)
	if d := f.kubectl("get", "pod", pod, "-o", "jsonpath={.spec.activeDeadlineSeconds}"); d != "43200" {
		t.Errorf("activeDeadlineSeconds %q, want 43200 (12 h)", d)
	}
	res := f.kubectl("get", "pod", pod, "-o", "jsonpath={.spec.containers[0].resources}")
	mustContain(t, "the agent's resources", res, `"limits":{"cpu":"1","memory":"256Mi"}`, `"requests":{"cpu":"10m","memory":"32Mi"}`)

	// The agent's process, found on the node (the test runs there as root).
	id := strings.TrimPrefix(f.kubectl("get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID}"), "containerd://")
	pid := processOfContainer(t, id)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, c := range []int{unix.CAP_DAC_OVERRIDE, unix.CAP_NET_ADMIN, unix.CAP_SETGID, unix.CAP_SETUID, unix.CAP_SYS_ADMIN, unix.CAP_SYS_PTRACE} {
		want |= 1 << c
	}
	for _, line := range []string{fmt.Sprintf("CapEff:\t%016x", want), fmt.Sprintf("CapBnd:\t%016x", want), "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(string(status), line+"\n") {
			t.Errorf("the agent's /proc/%d/status lacks %q:\n%s", pid, line, status)
		}
	}
	// Its root filesystem, through its own mounts, refuses writes.
	err = os.WriteFile(fmt.Sprintf("/proc/%d/root/planted", pid), []byte("x"), 0o755)
	if !errors.Is(err, unix.EROFS) {
		t.Errorf("writing to the agent's root filesystem: %v, want EROFS", err)
	}
}

// processOfContainer finds a container's process on this node by its
// container ID in /proc/*/cgroup.
func processOfContainer(t *testing.T, id string) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil || !strings.Contains(string(b), id) {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(d, "/")[2])
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "remocal" {
			return pid
		}
	}
	t.Fatalf("no remocal process of container %s on this node", id)
	return 0
}

// Targets where a session reaches beyond the target are refused before
// any agent starts, saying why and how to allow what the user may allow;
// an ordinary target in the same namespace still works.
func TestDangerousTargetsRefused(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)

	// kube-system: CoreDNS, which every pod of the cluster depends on.
	r := f.run("exec", "-n", "kube-system", "--target", "deploy/coredns", "--no-incoming", "--", f.probe(), "hostname")
	if r.Code == 0 {
		t.Fatal("a session started in kube-system")
	}
	mustContain(t, "kube-system error", r.Stderr, "target refused", "namespace kube-system", `"allowTargets": {"kubeSystem": true}`)
	if jobs, _ := f.c.Kubectl(f.ctx(), "-n", "kube-system", "get", "jobs", "-l", "app.kubernetes.io/name=remocal-agent", "-o", "name"); strings.TrimSpace(jobs) != "" {
		t.Errorf("an agent Job was created in kube-system: %s", jobs)
	}

	// A hostNetwork pod: its network namespace is the node's.
	f.apply(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 0
  containers:
  - {name: app, image: %s, imagePullPolicy: Never, args: [sleep]}
`, cluster.ToolboxImage))
	if err := f.c.WaitPod(f.ctx(), f.ns, "hostnet", "Ready", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "hostNetwork error", f.failing("pod/hostnet"), "target refused", "hostNetwork", "node's network")

	// A static pod: the kubelet runs it from a file in its manifest
	// directory; the API shows its mirror pod.
	manifest := filepath.Join(cluster.StaticPodDir(), f.ns+"-static.yaml")
	if err := os.WriteFile(manifest, fmt.Appendf(nil, `apiVersion: v1
kind: Pod
metadata: {name: static, namespace: %s}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: app, image: %s, imagePullPolicy: Never, args: [sleep]}
`, f.ns, cluster.ToolboxImage), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(manifest) }) // the kubelet then removes the pod
	static := "static-" + f.c.NodeName
	// The mirror pod appears once the kubelet has read the file.
	if err := poll.Until(f.ctx(), 60*time.Second, func() error {
		_, err := f.c.Kubectl(f.ctx(), "-n", f.ns, "get", "pod", static)
		return err
	}); err != nil {
		t.Fatalf("the kubelet did not run the static pod: %v", err)
	}
	if err := f.c.WaitPod(f.ctx(), f.ns, static, "Ready", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "static pod error", f.failing("pod/"+static), "target refused", "static pod", `"allowTargets": {"staticPods": true}`)
	f.noAgentJobs()

	// A namespace an administrator closed, then opened again.
	f.kubectl("label", "namespace", f.ns, "remocal.dev/targets=deny")
	mustContain(t, "closed namespace error", f.failing("deployment/inventory"), "target refused", "remocal.dev/targets=deny", "kubectl label namespace "+f.ns)
	f.writeConfig(`{"kubernetes": {"allowTargets": {"kubeSystem": true, "staticPods": true, "controlPlane": true}}}`)
	mustContain(t, "closed namespace error with everything allowed", f.failing("deployment/inventory"), "remocal.dev/targets=deny")
	f.kubectl("label", "namespace", f.ns, "remocal.dev/targets-")
	f.noAgentJobs()

	// A control-plane node. The label is the node's, for the duration of
	// this test only (the packages of make e2e run one at a time).
	node := f.c.NodeName
	if _, err := f.c.Kubectl(f.ctx(), "label", "node", node, "node-role.kubernetes.io/control-plane="); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.c.Kubectl(f.ctx(), "label", "node", node, "node-role.kubernetes.io/control-plane-") })
	f.writeConfig(`{}`)
	mustContain(t, "control-plane error", f.failing("deployment/inventory"), "target refused", "control-plane node", `"allowTargets": {"controlPlane": true}`)
	f.noAgentJobs()
	f.writeConfig(`{"kubernetes": {"allowTargets": {"controlPlane": true}}}`)
	if ok := f.exec("deployment/inventory", []string{"--no-incoming"}, f.probe(), "env=GREETING"); ok.Code != 0 || !strings.Contains(ok.Stdout, "env GREETING=hello from the cluster") {
		t.Errorf("with controlPlane allowed the session failed (exit %d):\n%s", ok.Code, ok.Stderr)
	}
}
