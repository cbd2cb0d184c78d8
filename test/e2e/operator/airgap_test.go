package operator

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/remocal/remocal/test/cluster"
)

// airgapRegistry is a registry nobody can reach: the name ends in
// .invalid (RFC 2606), and the harness's containerd pulls through a proxy
// on 127.0.0.1:9 that refuses every connection (docs/cluster.md, No
// pulls). Images under it exist only because the test put them on the
// node, as an air-gapped install does (docs/operator.md, Air-gapped).
const airgapRegistry = "registry.airgap.invalid/platform/remocal"

// airgapPullSecret holds credentials for airgapRegistry.
const airgapPullSecret = "airgap-pull"

// An air-gapped install: the images of `make images`, loaded onto the
// node under the organisation's registry name (never pulled from
// anywhere), and the chart with registry set to it, are all it takes for
// a developer's session to work end to end.
func TestAirGappedInstall(t *testing.T) {
	c := cluster.Require(t)
	buildImages(t)
	dropShared()
	ctx := testContext(t, 5*time.Minute)
	for _, img := range []string{"operator", "agent"} {
		src, dst := "remocal.local/"+img+":"+version, airgapRegistry+"/"+img+":"+version
		if err := c.TagImage(ctx, src, dst); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.RemoveImage(context.Background(), dst) })
	}
	reapLeftovers(t, c)
	in := &install{c: c, ns: c.Namespace(t), release: "remocal"}
	t.Cleanup(func() {
		if t.Failed() {
			in.dump(t)
		}
		in.uninstall(t)
	})
	// A private registry's credentials, which every pod of the install
	// must carry (the registry is unreachable, so they are never used).
	in.kubectl(t, "create", "secret", "docker-registry", airgapPullSecret, "--docker-server=registry.airgap.invalid",
		"--docker-username=remocal", "--docker-password=not-used")
	// IfNotPresent, the chart's default, for the operator; Never for the
	// agents: the kubelet uses the images on the node and pulls nothing.
	if _, err := c.Helm(ctx, "install", in.release, chartDir(t), "--namespace", in.ns,
		"--set", "registry="+airgapRegistry, "--set", "image.tag="+version, "--set", "agent.image.tag="+version,
		"--set", "agent.image.pullPolicy=Never", "--set", "imagePullSecrets[0]="+airgapPullSecret,
		"--set", "replicas=1"); err != nil {
		t.Fatal(err)
	}
	in.kubectl(t, "label", "namespace", in.ns, "pod-security.kubernetes.io/enforce=privileged")
	in.waitAvailable(t)

	f := &fixture{t: t, c: c, op: in, ns: c.Namespace(t), config: `{}`}
	f.deployInventory(1)
	alice := f.user("alice", "remocal-user")
	r := f.exec(alice, "deployment/inventory", []string{"--no-incoming"}, f.probe(), "env=GREETING")
	if r.Code != 0 {
		t.Fatalf("a session through the air-gapped operator: exit %d\n%s", r.Code, r.Stderr)
	}
	mustContain(t, "stdout", r.Stdout, "env GREETING=hello from the cluster")

	// Every pod the install runs (the operator, the agent it started)
	// has its image from the configured registry, present on the node.
	var pods corev1.PodList
	if err := json.Unmarshal([]byte(in.kubectl(t, "get", "pods", "-o", "json")), &pods); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range pods.Items {
		if !slices.Contains(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: airgapPullSecret}) {
			t.Errorf("pod %s has pull secrets %v, want %s", p.Name, p.Spec.ImagePullSecrets, airgapPullSecret)
		}
		for _, ctr := range p.Spec.Containers {
			if !strings.HasPrefix(ctr.Image, airgapRegistry+"/") {
				t.Errorf("pod %s runs %s, not from %s", p.Name, ctr.Image, airgapRegistry)
			}
			image := strings.TrimPrefix(ctr.Image, airgapRegistry+"/")
			seen[image] = true
			if image == "agent:"+version && ctr.ImagePullPolicy != corev1.PullNever {
				t.Errorf("agent pod %s pulls %s, want the chart's agent.image.pullPolicy Never", p.Name, ctr.ImagePullPolicy)
			}
		}
	}
	if !seen["operator:"+version] || !seen["agent:"+version] {
		t.Errorf("images run: %v, want the operator's and an agent's", seen)
	}
	// Nothing was pulled: the kubelet's events say the image was present.
	var events corev1.EventList
	if err := json.Unmarshal([]byte(in.kubectl(t, "get", "events", "-o", "json")), &events); err != nil {
		t.Fatal(err)
	}
	present := 0
	for _, ev := range events.Items {
		switch ev.Reason {
		case "Pulling", "Failed", "ErrImagePull", "BackOff":
			t.Errorf("event %s on %s: %s", ev.Reason, ev.InvolvedObject.Name, ev.Message)
		case "Pulled":
			if strings.Contains(ev.Message, "already present on machine") {
				present++
			}
		}
	}
	if present < 2 {
		t.Errorf("%d 'already present on machine' events, want the operator's and the agent's", present)
	}
}
