package operator

import (
	"context"
	"sync"

	"k8s.io/client-go/dynamic"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/operator/internal/agents"
	"github.com/remocal/remocal/operator/internal/broker"
	"github.com/remocal/remocal/operator/internal/splits"
)

// defaultBackend is the session broker with its agents, policies and, if
// enabled, queue splitting.
func defaultBackend(ctx context.Context, d Deps) (Backend, error) {
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
	var mgr *splits.Manager
	if d.QueueSplitting {
		dyn, err := dynamic.NewForConfig(d.Env.Config)
		if err != nil {
			return nil, err
		}
		mgr = splits.New(splits.Config{Kube: d.Env.Client, Dynamic: dyn, Authorizer: d.Authorizer,
			Leading: func() bool { return d.Leader == nil || d.Leader() == d.Self },
			Grace:   d.SessionTTL, Logger: d.Log.With("component", "queue-splits")})
		cfg.Splits = mgr
	}
	b, err := broker.New(cfg)
	if err != nil {
		return nil, err
	}
	if d.Policies != nil {
		d.Policies.OnChange(b.PoliciesChanged)
	}
	if mgr == nil {
		return b, nil
	}
	mgr.SetAlive(func(ns, session string) bool {
		_, ok := b.Get(ns, session)
		return ok
	})
	sb := &splittingBackend{Broker: b, mgr: mgr}
	sb.wg.Add(1)
	go func() {
		defer sb.wg.Done()
		mgr.Run(ctx)
	}()
	return sb, nil
}

// splittingBackend is the broker with the queue splits it drives.
type splittingBackend struct {
	*broker.Broker
	mgr *splits.Manager
	wg  sync.WaitGroup
}

// Close ends the sessions, then stops the routers without giving the
// queues back: the next leader resumes them from their record.
func (b *splittingBackend) Close() {
	b.Broker.Close()
	b.mgr.Close()
	b.wg.Wait()
}
