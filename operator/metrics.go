package operator

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/operator/internal/broker"
)

// metrics are the operator's Prometheus metrics (docs/operator.md,
// Metrics). Counters move with the audit records; gauges are read from
// the broker when scraped.
type metrics struct {
	reg            *prometheus.Registry
	sessionsTotal  *prometheus.CounterVec
	connectSeconds *prometheus.HistogramVec
	conflicts      *prometheus.CounterVec
	overrides      *prometheus.CounterVec
	denials        *prometheus.CounterVec
	queueSplits    *prometheus.CounterVec
}

const metricsPrefix = "remocal_operator_"

func newMetrics(sessions backend.Sessions, status backend.Status, traffic func() map[string][2]uint64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		sessionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricsPrefix + "sessions_total",
			Help: "Sessions started, by namespace, target kind and user."}, []string{"namespace", "target_kind", "user"}),
		connectSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricsPrefix + "connect_duration_seconds",
			Help:    "From a client's hello to its registered session (pods listed, policies evaluated), by target kind.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}}, []string{"target_kind"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricsPrefix + "conflicts_total",
			Help: "Subscriptions refused because another session holds the port, by namespace and target kind."}, []string{"namespace", "target_kind"}),
		overrides: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricsPrefix + "overrides_total",
			Help: "Ports taken from their holder (onConflict: override), by namespace and target kind."}, []string{"namespace", "target_kind"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricsPrefix + "policy_denials_total",
			Help: "Requests a policy refused or took away, by policy (kind namespace/name) and rule."}, []string{"policy", "rule"}),
		queueSplits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricsPrefix + "queue_splits_total",
			Help: "Queue splits sessions asked for, by namespace and decision (allow, deny, conflict)."}, []string{"namespace", "decision"}),
	}
	m.reg.MustRegister(m.sessionsTotal, m.connectSeconds, m.conflicts, m.overrides, m.denials, m.queueSplits,
		&stateCollector{sessions: sessions, status: status, traffic: traffic},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func kindOf(target string) string {
	kind, _, _ := strings.Cut(target, ".")
	return kind
}

// record moves the counters for one audit record.
func (m *metrics) record(r broker.Record) {
	kind := kindOf(r.Target)
	switch {
	case r.Action == broker.ActionConnect && r.Decision == broker.DecisionAllow:
		m.sessionsTotal.WithLabelValues(r.Namespace, kind, r.User.Username).Inc()
		m.connectSeconds.WithLabelValues(kind).Observe(r.Duration.Seconds())
	case r.Action == broker.ActionSubscribe && r.Decision == broker.DecisionDeny && r.Conflict:
		m.conflicts.WithLabelValues(r.Namespace, kind).Inc()
	case r.Action == broker.ActionOverride && r.Decision == broker.DecisionAllow:
		m.overrides.WithLabelValues(r.Namespace, kind).Inc()
	case r.Action == broker.ActionQueueSplit:
		decision := r.Decision
		if r.Conflict {
			decision = "conflict"
		}
		m.queueSplits.WithLabelValues(r.Namespace, decision).Inc()
	case r.Action == broker.ActionPolicyDenial && r.Policy != nil:
		m.denials.WithLabelValues(r.Policy.String(), r.Rule).Inc()
	}
}

// stateCollector reads the gauges and the routed traffic from the broker
// at each scrape.
type stateCollector struct {
	sessions backend.Sessions
	status   backend.Status
	traffic  func() map[string][2]uint64
}

var (
	descActive = prometheus.NewDesc(metricsPrefix+"sessions_active", "Live sessions (any phase), by namespace, target kind and user.",
		[]string{"namespace", "target_kind", "user"}, nil)
	descAgents   = prometheus.NewDesc(metricsPrefix+"agents", "Agents the operator keeps (one per target pod).", nil, nil)
	descRequests = prometheus.NewDesc(metricsPrefix+"routed_requests_total",
		"Connections and HTTP requests routed, by mode (mirror, steal: incoming; outgoing: opened by sessions).", []string{"mode"}, nil)
	descBytes = prometheus.NewDesc(metricsPrefix+"routed_bytes_total",
		"Bytes routed both ways, by mode, counted when each connection or request ends.", []string{"mode"}, nil)
	queueLabels     = []string{"namespace", "consumer", "queue"}
	descQueueRouted = prometheus.NewDesc(metricsPrefix+"queue_messages_routed_total",
		"Messages of a split queue its router delivered (since this leader started routing it).", queueLabels, nil)
	descQueueUnmatched = prometheus.NewDesc(metricsPrefix+"queue_messages_unmatched_total",
		"Messages of a split queue no session's steal filter matched: the deployed consumer's.", queueLabels, nil)
	descQueueSessions = prometheus.NewDesc(metricsPrefix+"queue_split_sessions",
		"Sessions splitting a queue now.", queueLabels, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descActive
	ch <- descAgents
	ch <- descRequests
	ch <- descBytes
	ch <- descQueueRouted
	ch <- descQueueUnmatched
	ch <- descQueueSessions
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	list, _ := c.sessions.List("")
	type key struct{ ns, kind, user string }
	active := map[key]int{}
	for _, s := range list {
		active[key{s.Namespace, kindOf(s.Spec.Target), s.Spec.User.Username}]++
	}
	for k, n := range active {
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(n), k.ns, k.kind, k.user)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := c.status.Status(ctx)
	ch <- prometheus.MustNewConstMetric(descAgents, prometheus.GaugeValue, float64(len(st.Agents)))
	for _, q := range st.QueueSplits {
		ch <- prometheus.MustNewConstMetric(descQueueRouted, prometheus.CounterValue, float64(q.Routed), q.Namespace, q.Consumer, q.Queue)
		ch <- prometheus.MustNewConstMetric(descQueueUnmatched, prometheus.CounterValue, float64(q.Deployed), q.Namespace, q.Consumer, q.Queue)
		ch <- prometheus.MustNewConstMetric(descQueueSessions, prometheus.GaugeValue, float64(len(q.Sessions)), q.Namespace, q.Consumer, q.Queue)
	}
	if c.traffic != nil {
		for mode, v := range c.traffic() {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(v[0]), mode)
			ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(v[1]), mode)
		}
	}
}

// serveMetrics serves /metrics on addr (plain HTTP: scraped inside the
// cluster; it shows user names, so keep the port off public networks)
// until ctx ends; the returned function waits for it.
func serveMetrics(ctx context.Context, addr string, m *metrics, log *slog.Logger) (func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving metrics", "addr", l.Addr().String())
	return wg.Wait, nil
}
