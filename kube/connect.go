package kube

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/remocal/remocal/interpose/connect"
)

// NewConnector is connect.Options.Cluster: the connector of a Kubernetes
// target, with the agent configured as o says and progress written to
// o.Stderr.
func NewConnector(ref string, o connect.Options) (connect.Connector, error) {
	return &Connector{Ref: ref, Flags: o.Kube, Agent: agentOptions(o), Progress: func(msg string) {
		if o.Stderr != nil {
			fmt.Fprintf(o.Stderr, "remocal: %s\n", msg)
		}
	}}, nil
}

// DefaultImage is the agent image a client of version asks for when the
// configuration names none: remocal.local/agent:VERSION, what `make images`
// builds with the same version, so that client and agent speak the same
// protocol.
func DefaultImage(version string) string {
	if version == "" {
		version = "dev"
	}
	return DefaultImageRepo + ":" + version
}

func agentOptions(o connect.Options) AgentOptions {
	a := o.Agent
	image := a.Image
	if image == "" {
		image = DefaultImage(o.Version)
	}
	return AgentOptions{
		Image: image, Namespace: a.Namespace, PullPolicy: corev1.PullPolicy(a.ImagePullPolicy), PullSecrets: a.ImagePullSecrets,
		Tolerations: a.Tolerations, Resources: a.Resources, Labels: a.Labels, Annotations: a.Annotations,
		StartupTimeout: time.Duration(a.StartupTimeout), IdleTTL: time.Duration(a.IdleTTL), Ephemeral: a.Ephemeral,
	}
}

var _ connect.Connector = (*Connector)(nil)
var _ connect.Redialer = (*Connector)(nil)
