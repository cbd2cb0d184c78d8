package kube

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/protocol/config"
)

// NewConnector is connect.Options.Cluster: the connector of a Kubernetes
// target, with the agent configured as o says and progress written to
// o.Stderr. o.Operator chooses the path: through the cluster's operator
// (true), directly to an agent remocal starts (false), or, with auto (the
// default), through the operator when the cluster has an available one,
// which is found out on the first Connect.
func NewConnector(ref string, o connect.Options) (connect.Connector, error) {
	progress := func(msg string) {
		if o.Stderr != nil {
			fmt.Fprintf(o.Stderr, "remocal: %s\n", msg)
		}
	}
	direct := &Connector{Ref: ref, Flags: o.Kube, Agent: agentOptions(o), Progress: progress}
	mode := o.Operator
	if mode == "" {
		mode = config.OperatorAuto
	}
	if mode == config.OperatorNever {
		return direct, nil
	}
	return &choosingConnector{ref: ref, mode: mode, flags: o.Kube, direct: direct, progress: progress, detect: DetectOperator}, nil
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
