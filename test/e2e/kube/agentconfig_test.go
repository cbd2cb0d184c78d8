package kube

import (
	"fmt"
	"testing"
)

// The agent section of the configuration shapes the agent's Job as users
// write it: another namespace for agents, a registry's pull secret there,
// labels, annotations and resources.
func TestAgentConfiguration(t *testing.T) {
	f := newFixture(t)
	agents := f.c.Namespace(t)
	if _, err := f.c.Kubectl(f.ctx(), "-n", agents, "create", "secret", "docker-registry", "regcred",
		"--docker-server=registry.invalid", "--docker-username=dev", "--docker-password=unused"); err != nil {
		t.Fatal(err)
	}
	f.writeConfig(fmt.Sprintf(`{"agent": {
		"namespace": %q,
		"imagePullSecrets": ["regcred"],
		"labels": {"team": "shop"},
		"annotations": {"cost-center": "42"},
		"resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}
	}}`, agents))
	f.deployInventory(1)
	r := f.exec("deploy/inventory", []string{"--no-incoming"}, f.probe(), "env=GREETING")
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	mustContain(t, "stdout", r.Stdout, "env GREETING=hello from the cluster")
	mustContain(t, "stderr", r.Stderr, "started in", agents+"/remocal-agent-")

	got, err := f.c.Kubectl(f.ctx(), "-n", agents, "get", "pods", "-l", "app.kubernetes.io/name=remocal-agent", "-o",
		`jsonpath={range .items[*]}{.spec.imagePullSecrets[0].name} {.metadata.labels.team} {.metadata.annotations.cost-center} {.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.requests.memory}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := "regcred shop 42 10m 32Mi"; got != want {
		t.Errorf("the agent's pod has %q (pull secret, label, annotation, requests), want %q", got, want)
	}
	if jobs := f.kubectl("get", "jobs", "-o", "name"); jobs != "" {
		t.Errorf("agent Jobs in the target's namespace although agent.namespace is %s: %s", agents, jobs)
	}
}
