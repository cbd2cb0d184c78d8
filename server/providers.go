package server

import (
	"log/slog"
	"time"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/server/internal/opsessions"
	"github.com/remocal/remocal/server/internal/targets"
)

// NewTargets starts the daemon's target providers for Options.Targets:
// processes on this machine always, and a cluster's pods and workloads when
// Kubernetes credentials load. Without any kubeconfig the daemon serves
// local targets only; a kubeconfig or context asked for by flag that does
// not load is an error.
func NewTargets(k config.Kubernetes, lg *slog.Logger) (*targets.Set, error) {
	providers := []targets.Provider{targets.NewLocal(2 * time.Second)}
	env, err := kube.Load(k)
	switch {
	case err != nil && (k.Kubeconfig != "" || k.Context != ""):
		return nil, err
	case err != nil:
		lg.Info("no Kubernetes targets: no usable kubeconfig; serving local targets only", "reason", err)
	default:
		lg.Info("Kubernetes credentials loaded; listing the cluster's targets", "context", env.Context, "server", env.Config.Host)
		providers = append(providers, targets.NewKube(env, targets.KubeOptions{Logger: lg}))
	}
	return targets.NewSet(providers...), nil
}

// NewRemoteSessions watches the sessions of the cluster's operator, if the
// kubeconfig loads (nil otherwise): whether the cluster has an operator is
// found out in the background, and without one nothing is watched.
func NewRemoteSessions(k config.Kubernetes, lg *slog.Logger) *opsessions.Watcher {
	env, err := kube.Load(k)
	if err != nil {
		return nil
	}
	return opsessions.Start(env, lg)
}
