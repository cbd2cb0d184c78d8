package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
	rkube "github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/poll"
)

// Agents in a shared namespace: a session leaves its agent running (idle
// TTL), and another account that may port-forward there, but not read the
// agent's key, reaches the agent's port and is refused in the handshake.
// The same user's next session joins the agent with its key.
func TestAgentRefusesAPortForwarderWithoutItsKey(t *testing.T) {
	f := newFixture(t)
	agents := f.c.Namespace(t)
	f.writeConfig(fmt.Sprintf(`{"agent": {"namespace": %q, "idleTTL": "5m"}}`, agents))
	f.deployInventory(1)
	r := f.exec("deploy/inventory", []string{"--no-incoming"}, f.probe(), "env=GREETING")
	if r.Code != 0 {
		t.Fatalf("exit %d:\n%s", r.Code, r.Stderr)
	}
	pod, err := f.c.Kubectl(f.ctx(), "-n", agents, "get", "pods", "-l", "app.kubernetes.io/name=remocal-agent", "-o", "jsonpath={.items[0].metadata.name}")
	if err != nil || pod == "" {
		t.Fatalf("the agent pod: %q %v", pod, err)
	}

	// mallory may port-forward in the agents' namespace, nothing else.
	for _, args := range [][]string{
		{"create", "serviceaccount", "mallory"},
		{"create", "role", "portforward", "--verb=create", "--resource=pods/portforward"},
		{"create", "rolebinding", "mallory", "--role=portforward", "--serviceaccount=" + agents + ":mallory"},
	} {
		if _, err := f.c.Kubectl(f.ctx(), append([]string{"-n", agents}, args...)...); err != nil {
			t.Fatal(err)
		}
	}
	token, err := f.c.Kubectl(f.ctx(), "-n", agents, "create", "token", "mallory", "--duration=1h")
	if err != nil {
		t.Fatal(err)
	}
	env, err := rkube.Load(rkube.Flags{Kubeconfig: f.c.TokenKubeconfig(t, "mallory", token, agents)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Kubectl(f.ctx(), "-n", agents, "auth", "can-i", "get", "secrets", "--as=system:serviceaccount:"+agents+":mallory"); err == nil {
		t.Fatal("mallory may read Secrets; the test needs an account that may not")
	}
	attempt := func(opts agentclient.Options) error {
		t.Helper()
		conn, err := rkube.DialPod(env, agents, pod, rkube.AgentPort)
		if err != nil {
			t.Fatalf("mallory's port-forward: %v", err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		opts.Name = "mallory@laptop"
		c, err := agentclient.New(ctx, conn, opts)
		if err == nil {
			c.Env(ctx, nil, nil)
			c.Close()
		}
		return err
	}
	if err := attempt(agentclient.Options{Unauthenticated: true}); wire.CodeOf(err) != wire.CodePermissionDenied {
		t.Errorf("mallory without a key: %v; want permission_denied", err)
	}
	if err := attempt(agentclient.Options{Key: []byte("mallory-guesses-the-key-0123456789")}); !errors.Is(err, agentclient.ErrUnprovenAgent) {
		t.Errorf("mallory with a guessed key: %v; want the agent's proof to fail", err)
	}
	// The agent notices each refused connection when its port-forward
	// stream closes.
	var logs string
	if err := poll.Until(f.ctx(), 30*time.Second, func() error {
		logs, err = f.c.Kubectl(f.ctx(), "-n", agents, "logs", pod)
		if err == nil && strings.Count(logs, "handshake failed") < 2 {
			err = errors.New("the refusals are not logged yet")
		}
		return err
	}); err != nil {
		t.Errorf("%v; the agent's log:\n%s", err, logs)
	}
	if strings.Contains(logs, "name=mallory") {
		t.Errorf("the agent served mallory:\n%s", logs)
	}

	// The same user's next session joins the running agent with its key.
	r = f.exec("deploy/inventory", []string{"--no-incoming"}, f.probe(), "env=GREETING")
	if r.Code != 0 {
		t.Fatalf("second session: exit %d:\n%s", r.Code, r.Stderr)
	}
	mustContain(t, "stdout", r.Stdout, "env GREETING=hello from the cluster")
	mustContain(t, "stderr", r.Stderr, "using the running agent "+agents+"/"+pod)
}

// A pod dressed as the agent (its labels, a container named agent) in the
// agents' namespace is not taken for it: remocal refuses with what to do,
// and the impostor (a real agent without the key, which logs clients) is
// sent nothing.
func TestImpostorAgentPodIsRefused(t *testing.T) {
	f := newFixture(t)
	agents := f.c.Namespace(t)
	f.writeConfig(fmt.Sprintf(`{"agent": {"namespace": %q}}`, agents))
	f.deployInventory(1)
	// The pod that stays: the scale-down to one replica may still be
	// deleting the other, which remocal does not pick.
	cid := f.pods("app=inventory")[0].containerID
	sum := sha256.Sum256([]byte(cid))
	if _, err := f.c.KubectlInput(f.ctx(), fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: remocal-agent-impostor
  labels: {app.kubernetes.io/name: remocal-agent, remocal.dev/agent-for: %s}
spec:
  containers:
  - name: agent
    image: remocal.local/agent:%s
    imagePullPolicy: Never
    command: [/remocal, agent, --targetless, --insecure, --listen, "tcp:127.0.0.1:%d", --idle-ttl, "0", --log-level, debug]
`, hex.EncodeToString(sum[:])[:40], version, rkube.AgentPort), "-n", agents, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Kubectl(f.ctx(), "-n", agents, "wait", "--for=condition=Ready", "pod/remocal-agent-impostor", "--timeout=90s"); err != nil {
		t.Fatal(err)
	}
	msg := f.failing("deploy/inventory")
	mustContain(t, "error", msg, "the pod remocal-agent-impostor is not the agent remocal created; delete it or ask an administrator")
	logs, err := f.c.Kubectl(f.ctx(), "-n", agents, "logs", "remocal-agent-impostor")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs, "client connected") || strings.Contains(logs, "handshake") {
		t.Errorf("the impostor heard from a client:\n%s", logs)
	}

	// Once it is deleted, remocal starts its own agent.
	if _, err := f.c.Kubectl(f.ctx(), "-n", agents, "delete", "pod", "remocal-agent-impostor", "--wait"); err != nil {
		t.Fatal(err)
	}
	r := f.exec("deploy/inventory", []string{"--no-incoming"}, f.probe(), "env=GREETING")
	if r.Code != 0 {
		t.Fatalf("exit %d:\n%s", r.Code, r.Stderr)
	}
	mustContain(t, "stdout", r.Stdout, "env GREETING=hello from the cluster")
}
