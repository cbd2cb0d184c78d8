package kube

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/poll"
)

// deployShop runs the inventory app (container app) with a sidecar
// (container sidecar) running the toolbox with sidecarArgs: a pod whose
// own containers share the ephemeral agent's network namespace, and so
// its 127.0.0.1.
func (f *fixture) deployShop(sidecarArgs ...string) podInfo {
	f.t.Helper()
	quoted := make([]string, len(sidecarArgs))
	for i, a := range sidecarArgs {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	f.apply(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: app
        image: remocal.local/examples/inventory:dev
        imagePullPolicy: IfNotPresent
        env: [{name: GREETING, value: hello from the cluster}]
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
      - name: sidecar
        image: %s
        imagePullPolicy: Never
        args: [%s]
`, cluster.ToolboxImage, strings.Join(quoted, ", ")))
	f.rollout("deployment/shop")
	return f.pods("app=shop")[0]
}

// An ephemeral agent listens on 127.0.0.1 in its target pod's network
// namespace, where the app and its sidecars reach it without any
// port-forward. A sidecar that speaks the protocol without the agent's key
// (guessing a proof, or skipping it) is refused with permission_denied and
// served nothing, while the session that created the agent keeps working
// and the next one joins it with its key.
func TestEphemeralAgentRefusesItsPodsContainers(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(`{"agent": {"ephemeral": true}}`)
	pod := f.deployShop("sleep")
	p := f.start("deployment/shop/container/app", []string{"--no-incoming"}, f.probe(), "env=GREETING", "hostname", "wait")
	p.Expect(p.Stderr, "as ephemeral container remocal-agent-1")
	p.Expect(p.Stdout, "env GREETING=hello from the cluster")
	p.Expect(p.Stdout, "hostname "+pod.name)
	p.Expect(p.Stdout, "waiting")

	for _, mode := range []string{"guess", "skip"} {
		out, err := f.c.Kubectl(f.ctx(), "-n", f.ns, "exec", pod.name, "-c", "sidecar", "--",
			"/toolbox", "agent-hello", "-auth", mode, "-name", "intruder-"+mode+"@sidecar", "127.0.0.1:47113")
		if err != nil {
			t.Fatalf("the sidecar's attempt (%s): %v\n%s", mode, err, out)
		}
		t.Logf("sidecar, -auth %s:\n%s", mode, out)
		mustContain(t, "the sidecar's attempt ("+mode+")", out,
			"auth=true proof=true", "refused permission_denied", "closed by the agent")
	}

	// The agent logged both refusals and served neither intruder.
	var logs string
	if err := poll.Until(f.ctx(), 30*time.Second, func() error {
		var err error
		logs, err = f.c.Kubectl(f.ctx(), "-n", f.ns, "logs", pod.name, "-c", "remocal-agent-1")
		if err == nil && strings.Count(logs, "handshake failed") < 2 {
			err = errors.New("the refusals are not logged yet")
		}
		return err
	}); err != nil {
		t.Errorf("%v; the agent's log:\n%s", err, logs)
	}
	if strings.Contains(logs, "name=intruder") {
		t.Errorf("the agent served the sidecar:\n%s", logs)
	}

	// The session that created the agent is still served, and the next
	// session joins the agent with its key.
	r := f.exec("deployment/shop/container/app", []string{"--no-incoming"}, f.probe(), "env=GREETING", "hostname")
	if r.Code != 0 {
		t.Fatalf("second session: exit %d:\n%s", r.Code, r.Stderr)
	}
	mustContain(t, "second session's stdout", r.Stdout, "env GREETING=hello from the cluster", "hostname "+pod.name)
	mustContain(t, "second session's stderr", r.Stderr, "using the running agent")
	fmt.Fprintln(p.Stdin, "go on")
	if code := p.Wait(); code != 0 {
		t.Errorf("the first session: exit %d after the attacks", code)
	}
}

// A sidecar that binds the agent's address (127.0.0.1:47113) before the
// ephemeral agent starts, and answers like an agent without a key, is not
// taken for the agent: the session ends with a clear message before the
// program runs, and the impostor gets nothing beyond each Hello.
func TestEphemeralAgentPortTakenByImpostor(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(`{"agent": {"ephemeral": true}}`)
	pod := f.deployShop("fake-agent", "-addr", "127.0.0.1:47113")
	if err := poll.Until(f.ctx(), 30*time.Second, func() error {
		if !strings.Contains(f.kubectl("logs", pod.name, "-c", "sidecar"), "fake agent listening") {
			return errors.New("the impostor is not listening yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := f.exec("deployment/shop/container/app", []string{"--no-incoming"}, f.probe(), "env=GREETING", "hostname")
	t.Logf("exit %d; stderr:\n%s", r.Code, r.Stderr)
	if r.Code == 0 || strings.Contains(r.Stdout, "GREETING") || strings.Contains(r.Stdout, "hostname") {
		t.Fatalf("the session ran its program (exit %d):\n%s", r.Code, r.Stdout)
	}
	impostor := strings.Contains(r.Stderr, "is not the agent remocal created")
	exited := strings.Contains(r.Stderr, "address already in use")
	if !impostor && !exited {
		t.Errorf("stderr says neither that the pod is not the agent nor that the agent could not listen:\n%s", r.Stderr)
	}

	// Each connection remocal opened ends (the port-forward closes it).
	var logs string
	var hellos int
	var afters [][]string
	if err := poll.Until(f.ctx(), 30*time.Second, func() error {
		logs = f.kubectl("logs", pod.name, "-c", "sidecar")
		hellos = strings.Count(logs, "hello from ")
		afters = regexp.MustCompile(`after the welcome: (\d+) bytes`).FindAllStringSubmatch(logs, -1)
		if len(afters) != hellos {
			return fmt.Errorf("%d hellos, %d connections ended: a connection is still open", hellos, len(afters))
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	t.Logf("the impostor's log:\n%s", logs)
	if impostor && hellos == 0 {
		t.Errorf("remocal says it met the impostor, which heard no hello")
	}
	if strings.Contains(logs, "not a hello") || strings.Contains(logs, "bad hello") {
		t.Errorf("the impostor got something other than a hello first")
	}
	for _, m := range afters {
		if m[1] != "0" {
			t.Errorf("remocal sent the impostor %s bytes after its welcome", m[1])
		}
	}

	// The agent could not listen: its container ended and said why.
	agentLog := f.kubectl("logs", pod.name, "-c", "remocal-agent-1")
	mustContain(t, "the agent's log", agentLog, "address already in use")
}
