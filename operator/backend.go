package operator

import (
	"context"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/operator/internal/agents"
	"github.com/remocal/remocal/operator/internal/broker"
)

// defaultBackend is the session broker over agents the operator runs in
// its own namespace, one per target pod.
func defaultBackend(_ context.Context, d Deps) (Backend, error) {
	pods := agents.New(agents.Config{
		Env:       d.Env,
		Namespace: d.Namespace,
		Agent: kube.AgentOptions{Image: d.AgentImage, PullPolicy: d.AgentPullPolicy, PullSecrets: d.AgentPullSecrets,
			IdleTTL: d.AgentTTL},
		Version: d.Version,
		Logger:  d.Log.With("component", "agents"),
	})
	cfg := broker.Config{
		Agents:       pods,
		Authorizer:   d.Authorizer,
		Version:      d.Version,
		Self:         d.Self,
		Leader:       d.Leader,
		SessionTTL:   d.SessionTTL,
		AgentIdleTTL: d.AgentTTL,
		Logger:       d.Log.With("component", "broker"),
		TargetInfo:   d.TargetInfo,
		Auditor:      d.Auditor,
	}
	if d.Policies != nil {
		cfg.Policies = d.Policies
	}
	b, err := broker.New(cfg)
	if err != nil {
		return nil, err
	}
	if d.Policies != nil {
		d.Policies.OnChange(b.PoliciesChanged)
	}
	return b, nil
}
