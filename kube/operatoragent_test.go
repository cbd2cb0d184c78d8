package kube

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/remocal/remocal/internal/agenttls"
)

// The operator's agent listens on its pod's address with TLS, the
// certificate and key mounted beside its key, under a name of its own
// (not the name of a client's agent of the same container).
func TestOperatorAgentJob(t *testing.T) {
	job := operatorAgentJob(keyTarget, "remocal-system", AgentOptions{Image: "a", IdleTTL: time.Minute}, "remocal-agent-key-0a1b2c3d4e")
	spec := job.Spec.Template.Spec
	c := spec.Containers[0]
	wantArgs := []string{"--listen", "tcp::47114", "--idle-ttl", "1m0s", "--container-id", "containerd://abc", "--target-name", "deployment/api",
		"--node-ip=$(REMOCAL_NODE_IP)", "--secret-file", "/var/run/remocal/agent/key",
		"--tls-cert-file", "/var/run/remocal/agent/tls.crt", "--tls-key-file", "/var/run/remocal/agent/tls.key"}
	if diff := cmp.Diff(wantArgs, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if job.Namespace != "remocal-system" || job.Name == agentJobName(keyTarget.ContainerID) || job.Name != agentJobName("operator/"+keyTarget.ContainerID) {
		t.Errorf("job %s/%s", job.Namespace, job.Name)
	}
	if spec.NodeName != "node-7" || !spec.HostPID || len(c.Ports) != 1 || c.Ports[0].ContainerPort != OperatorAgentPort {
		t.Errorf("node %q hostPID %v ports %+v", spec.NodeName, spec.HostPID, c.Ports)
	}
	items := spec.Volumes[0].Secret.Items
	if len(items) != 3 || items[1].Key != tlsCertItem || items[2].Key != tlsKeyItem || *spec.Volumes[0].Secret.DefaultMode != 0o400 {
		t.Errorf("secret items %+v", spec.Volumes[0].Secret)
	}
	if !isOperatorAgentJob(job) || job.Labels[LabelOperator] != "true" || job.Spec.Template.Labels[LabelOperator] != "true" {
		t.Errorf("the operator's own Job is not recognised as its agent Job (labels %v)", job.Labels)
	}
	if isOperatorAgentJob(agentJob(keyTarget, "shop", keyTarget.ContainerID, AgentOptions{Image: "a"}, "s")) {
		t.Error("a client's agent Job passes for the operator's")
	}
}

// The Secret holds a key and a TLS identity the agent can serve and the
// operator pin.
func TestOperatorAgentSecret(t *testing.T) {
	data, err := operatorSecrets("remocal-agent-x")
	if err != nil {
		t.Fatal(err)
	}
	if len(data[keyItem]) < 32 {
		t.Errorf("key %q", data[keyItem])
	}
	if _, err := tls.X509KeyPair(data[tlsCertItem], data[tlsKeyItem]); err != nil {
		t.Errorf("the certificate and key do not make a pair: %v", err)
	}
	if _, err := agenttls.PinnedConfig(data[tlsCertItem]); err != nil {
		t.Error(err)
	}
}

// An operator's agent another operator process started (before a restart)
// is joined with the credentials in its Secret; its address is its pod's.
func TestRunningOperatorAgentIsJoined(t *testing.T) {
	job := operatorAgentJob(keyTarget, "remocal-system", AgentOptions{Image: "a"}, "remocal-agent-key-0a1b2c3d4e")
	job.UID = "job-uid"
	owner := metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID, Controller: ptr(true)}
	labels := map[string]string{batchv1.ControllerUidLabel: string(job.UID)}
	pod := runningAgentPod(job.Name+"-xyz", labels, &owner, jobSecret(job))
	pod.Namespace = "remocal-system"
	pod.Status.PodIP = "10.244.1.7"
	data, err := operatorSecrets(job.Name)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: jobSecret(job), Namespace: "remocal-system",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID}}}, Data: data}
	env := &Env{Client: fake.NewClientset(job, pod, secret), Namespace: "remocal-system"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := EnsureOperatorAgent(ctx, env, keyTarget, "remocal-system", AgentOptions{Image: "a"}, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if a.AgentAddress() != "10.244.1.7:47114" || string(a.Key) != string(data[keyItem]) || string(a.TLSCert) != string(data[tlsCertItem]) {
		t.Fatalf("agent = %+v", a)
	}

	// A client's agent Job under the operator agent's name is not joined.
	foreign := agentJob(keyTarget, "remocal-system", "operator/"+keyTarget.ContainerID, AgentOptions{Image: "a"}, "s")
	foreign.UID = "foreign"
	env = &Env{Client: fake.NewClientset(foreign), Namespace: "remocal-system"}
	if _, err := EnsureOperatorAgent(ctx, env, keyTarget, "remocal-system", AgentOptions{Image: "a", StartupTimeout: time.Second}, func(string) {}); !errors.Is(err, ErrNotOurAgent) {
		t.Fatalf("EnsureOperatorAgent with a client's Job of its name: %v", err)
	}
}
