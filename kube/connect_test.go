package kube

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/protocol/config"
)

func TestDefaultImage(t *testing.T) {
	for version, want := range map[string]string{
		"":       DefaultImageRepo + ":dev",
		"1.2.3":  DefaultImageRepo + ":1.2.3",
		"v0.9.0": DefaultImageRepo + ":v0.9.0",
	} {
		if got := DefaultImage(version); got != want {
			t.Errorf("DefaultImage(%q) = %q, want %q", version, got, want)
		}
	}
}

func TestAgentOptions(t *testing.T) {
	five := 5
	full := config.Agent{Image: "registry.example/agent:1", Namespace: "remocal", ImagePullPolicy: "Always",
		ImagePullSecrets: []string{"regcred"}, Tolerations: []config.Toleration{{Key: "k", TolerationSeconds: &five}},
		Resources: &config.Resources{Limits: map[string]string{"cpu": "1"}}, Labels: map[string]string{"team": "shop"},
		Annotations: map[string]string{"a": "b"}, StartupTimeout: config.Duration(2 * time.Minute),
		IdleTTL: config.Duration(90 * time.Second), Ephemeral: true}
	for _, tc := range []struct {
		name string
		o    connect.Options
		want AgentOptions
	}{
		{"nothing configured", connect.Options{Version: "1.2.3"}, AgentOptions{Image: DefaultImageRepo + ":1.2.3"}},
		{"development build", connect.Options{}, AgentOptions{Image: DefaultImageRepo + ":dev"}},
		{"everything", connect.Options{Version: "1.2.3", Agent: full}, AgentOptions{Image: "registry.example/agent:1", Namespace: "remocal",
			PullPolicy: corev1.PullAlways, PullSecrets: []string{"regcred"}, Tolerations: full.Tolerations, Resources: full.Resources,
			Labels: full.Labels, Annotations: full.Annotations, StartupTimeout: 2 * time.Minute, IdleTTL: 90 * time.Second, Ephemeral: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, agentOptions(tc.o)); diff != "" {
				t.Errorf("agentOptions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewConnector(t *testing.T) {
	kube := config.Kubernetes{Context: "prod", Namespace: "shop"}
	c, err := NewConnector("deployment/api", connect.Options{Kube: kube, Version: "1.2.3", Operator: config.OperatorNever})
	if err != nil {
		t.Fatal(err)
	}
	k := c.(*Connector)
	// auto (the default) and true decide on the first Connect, with the
	// same direct connector to fall back on.
	for _, mode := range []config.OperatorMode{"", config.OperatorAuto, config.OperatorAlways} {
		c, err := NewConnector("deployment/api", connect.Options{Kube: kube, Version: "1.2.3", Operator: mode})
		if ch, ok := c.(*choosingConnector); err != nil || !ok || ch.direct.Ref != "deployment/api" || ch.flags != kube || ch.mode == "" {
			t.Errorf("NewConnector with operator %q = %T, %v", mode, c, err)
		}
	}
	if k.Ref != "deployment/api" || k.Flags != kube || k.Agent.Image != DefaultImageRepo+":1.2.3" {
		t.Errorf("NewConnector = ref %q flags %+v image %q", k.Ref, k.Flags, k.Agent.Image)
	}
	k.Progress("no Stderr: nothing written, no panic")
}
