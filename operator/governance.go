package operator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"k8s.io/client-go/dynamic"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/operator/internal/policies"
)

// governance is what the operator adds around its broker for a platform
// team (docs/operator.md, Policies, Audit, Metrics): the policies'
// informers, the audit (JSON lines, Events), the usage and the metrics.
type governance struct {
	policies *policies.Watcher
	targets  *policyTargets
	audit    *auditor
	usage    *usage
	stops    []func() // in reverse order by stop
}

// startGovernance starts following the policies and writing Events; its
// goroutines run until stop, after the broker has closed (a closing
// broker still records its sessions' ends).
func startGovernance(ctx context.Context, env *kube.Env, targets *kubeTargets, auditOut io.Writer, log *slog.Logger) (*governance, error) {
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		return nil, fmt.Errorf("build the Kubernetes client: %w", err)
	}
	g := &governance{policies: policies.New(dyn, log.With("component", "policies")), usage: newUsage()}
	g.targets = &policyTargets{dyn: dyn, targets: &kubeTargets{env: env}, watcher: g.policies}
	targets.policies = g.targets
	// Sessions are refused until the policies have listed
	// (policies.Watcher.For).
	pctx, stopPolicies := context.WithCancel(context.WithoutCancel(ctx))
	g.policies.Start(pctx)
	g.stops = append(g.stops, func() {
		stopPolicies()
		g.policies.Shutdown()
	})
	// Started before the auditor, so stopped after it: the last records
	// of a closing broker are stored too.
	uctx, stopUsage := context.WithCancel(context.WithoutCancel(ctx))
	waitUsage := g.usage.persist(uctx, &usageStore{cs: env.Client, ns: env.Namespace}, log.With("component", "usage"))
	g.stops = append(g.stops, func() {
		stopUsage()
		waitUsage()
	})
	if auditOut == nil {
		auditOut = os.Stdout
	}
	g.audit = newAuditor(auditOut, env.Client, log.With("component", "audit"), nil, g.usage)
	actx, stopAudit := context.WithCancel(context.WithoutCancel(ctx))
	g.audit.run(actx)
	g.stops = append(g.stops, func() {
		stopAudit()
		g.audit.wait()
	})
	return g, nil
}

// serve starts the metrics over the broker b (on addr; "" or "0" serves
// none) and returns the status the API server shows: the broker's with
// sessions per target, recent denials, usage and the policies' health.
func (g *governance) serve(ctx context.Context, b Backend, addr string, log *slog.Logger) (backend.Status, error) {
	var traffic func() map[string][2]uint64
	if t, ok := b.(interface{ Traffic() map[string][2]uint64 }); ok {
		traffic = t.Traffic
	}
	// Set before the API server serves, so before any record.
	g.audit.metrics = newMetrics(b, b, traffic)
	status := &statusWithUsage{inner: b, sessions: b, usage: g.usage, problems: func() []string {
		if !g.policies.Synced() {
			return []string{"the policies are not loaded yet (remocalpolicies, remocalclusterpolicies.policy.remocal.dev): sessions are refused until they are; check that the chart's CRDs are installed"}
		}
		return nil
	}}
	if addr == "" || addr == "0" {
		return status, nil
	}
	mctx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	waitMetrics, err := serveMetrics(mctx, addr, g.audit.metrics, log.With("component", "metrics"))
	if err != nil {
		stopMetrics()
		return nil, fmt.Errorf("serve metrics on %s: %w", addr, err)
	}
	g.stops = append(g.stops, func() {
		stopMetrics()
		waitMetrics()
	})
	return status, nil
}

// stop ends what start and serve started, last first.
func (g *governance) stop() {
	for i := len(g.stops) - 1; i >= 0; i-- {
		g.stops[i]()
	}
}
