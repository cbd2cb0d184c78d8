// Package operator is remocal-operator (cmd/remocal-operator): the aggregated API server of
// protocol/operator, backed by the Kubernetes target catalogue (package
// kube) and the session broker. Run is its whole life.
package operator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/operator/internal/apiserver"
	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/operator/internal/broker"
	"github.com/remocal/remocal/operator/internal/policies"
)

// Options configure the operator. NewOptions gives the defaults; AddFlags
// binds them (and the API server's serving and delegated authentication
// and authorization flags) to a command line.
type Options struct {
	// Kubeconfig, for development outside a cluster: the operator's own
	// credentials (and those of its delegated authentication and
	// authorization, unless their own flags say otherwise). In a pod it
	// is empty and the service account is used.
	Kubeconfig string
	// Namespace is the operator's own namespace: its agents run there.
	Namespace string
	// AgentImage is the image of the agents the operator starts;
	// AgentPullPolicy and AgentPullSecrets (Secrets in Namespace) how
	// their pods pull it, for a private registry.
	AgentImage       string
	AgentPullPolicy  string
	AgentPullSecrets []string
	// SessionTTL is how long a disconnected session keeps its locks for
	// its client to resume it; AgentTTL how long an agent without
	// sessions is kept.
	SessionTTL time.Duration
	AgentTTL   time.Duration
	// Election is the leader election among the operator's replicas.
	Election LeaderElection
	// QueueSplitting lets sessions split the queues of
	// RemocalQueueConsumers (docs/queues.md); it needs the CRD and the
	// RBAC the chart grants with queueSplitting.enabled.
	QueueSplitting bool
	// MetricsAddr is where Prometheus metrics are served (plain HTTP,
	// /metrics); empty or "0" serves none.
	MetricsAddr string
	// Audit receives the audit records as JSON lines (default: standard
	// output).
	Audit io.Writer
	// Version is the operator's version (remocal's).
	Version string
	// Log receives the operator's own events (nil: slog.Default()); the
	// generic API server logs through klog.
	Log *slog.Logger

	// NewBackend builds the session broker, its registry and the status
	// report; nil uses the built-in one (defaultBackend). If the Backend
	// has a Close method (with or without an error), Run calls it after
	// the API server has stopped and every session has ended.
	NewBackend func(ctx context.Context, d Deps) (Backend, error)

	server *apiserver.Options
}

// Backend is what the session broker provides to the API server.
type Backend interface {
	backend.Broker
	backend.Sessions
	backend.Status
}

// Deps is what a Backend is built from.
type Deps struct {
	Env        *kube.Env
	Targets    backend.Targets
	Authorizer backend.Authorizer
	Namespace  string
	AgentImage string
	// AgentPullPolicy and AgentPullSecrets are the agent pods' image
	// pull policy and pull secrets.
	AgentPullPolicy  corev1.PullPolicy
	AgentPullSecrets []string
	SessionTTL       time.Duration
	AgentTTL         time.Duration
	Version          string
	Log              *slog.Logger
	// Self names this replica (its pod); Leader names the one that leads
	// now.
	Self   string
	Leader func() string
	// Policies follows the policy resources; TargetInfo gives a target's
	// labels and default container for them.
	Policies   *policies.Watcher
	TargetInfo broker.TargetInfo
	// Auditor receives the broker's audit records.
	Auditor broker.Auditor
	// QueueSplitting enables queue.split (RemocalQueueConsumers).
	QueueSplitting bool
}

// NewOptions returns the defaults; the namespace defaults to $POD_NAMESPACE
// (the downward API in the operator's Deployment).
func NewOptions(version string) *Options {
	return &Options{
		Namespace:      os.Getenv("POD_NAMESPACE"),
		AgentImage:     kube.DefaultImage(version),
		SessionTTL:     5 * time.Minute,
		AgentTTL:       10 * time.Minute,
		Election:       DefaultLeaderElection(),
		MetricsAddr:    ":9090",
		QueueSplitting: true,
		Version:        version,
		server:         apiserver.NewOptions(),
	}
}

// AddFlags binds the options to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig file, for running the operator outside the cluster during development (default: the pod's service account)")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "the operator's own namespace, where it runs its agents (default: $POD_NAMESPACE)")
	fs.StringVar(&o.AgentImage, "agent-image", o.AgentImage, "image of the agents the operator starts")
	fs.StringVar(&o.AgentPullPolicy, "agent-image-pull-policy", o.AgentPullPolicy, "imagePullPolicy of the agents' pods: Always, IfNotPresent or Never (default: Kubernetes' default for the tag)")
	fs.StringSliceVar(&o.AgentPullSecrets, "agent-image-pull-secrets", o.AgentPullSecrets, "names of image pull Secrets in the operator's namespace for the agents' pods (a private registry)")
	fs.DurationVar(&o.SessionTTL, "session-ttl", o.SessionTTL, "how long a disconnected session keeps its ports for its client to come back")
	fs.DurationVar(&o.AgentTTL, "agent-ttl", o.AgentTTL, "how long an agent without sessions is kept before it is removed")
	fs.BoolVar(&o.QueueSplitting, "queue-splitting", o.QueueSplitting, "let sessions split the queues of RemocalQueueConsumers (needs the CRD and its RBAC: chart value queueSplitting.enabled)")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "address of the Prometheus metrics endpoint (plain HTTP, /metrics); 0 disables it")
	o.Election.AddFlags(fs)
	o.server.SecureServing.AddFlags(fs)
	o.server.Authentication.AddFlags(fs)
	o.server.Authorization.AddFlags(fs)
}

// validate checks what the flags cannot.
func (o *Options) validate() error {
	var errs []error
	if o.Namespace == "" {
		errs = append(errs, errors.New("the operator's namespace is unknown: pass --namespace, or set POD_NAMESPACE (the chart sets it from the downward API)"))
	}
	if o.AgentImage == "" {
		errs = append(errs, errors.New("--agent-image is empty; give the image of remocal's agent"))
	}
	switch corev1.PullPolicy(o.AgentPullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		errs = append(errs, fmt.Errorf("--agent-image-pull-policy %q is not a pull policy; use Always, IfNotPresent or Never", o.AgentPullPolicy))
	}
	for _, name := range o.AgentPullSecrets {
		if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--agent-image-pull-secrets: %q is not a Secret name: %s", name, strings.Join(msgs, "; ")))
		}
	}
	if o.SessionTTL <= 0 || o.AgentTTL <= 0 {
		errs = append(errs, fmt.Errorf("--session-ttl (%s) and --agent-ttl (%s) must be positive", o.SessionTTL, o.AgentTTL))
	}
	errs = append(errs, o.Election.validate())
	return errors.Join(errs...)
}

// Run serves the operator's API until ctx ends.
func Run(ctx context.Context, o *Options) error {
	if err := o.validate(); err != nil {
		return err
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	env, err := loadEnv(o.Kubeconfig, o.Namespace)
	if err != nil {
		return err
	}
	if o.Kubeconfig != "" {
		// Development: the delegated checks use the same credentials.
		if o.server.Authentication.RemoteKubeConfigFile == "" {
			o.server.Authentication.RemoteKubeConfigFile = o.Kubeconfig
		}
		if o.server.Authorization.RemoteKubeConfigFile == "" {
			o.server.Authorization.RemoteKubeConfigFile = o.Kubeconfig
		}
	}
	self, err := replicaName()
	if err != nil {
		return err
	}
	// The run ends with ctx, or when this replica loses the Lease.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	leading := func() (bool, string) { return true, self }
	leader := func() string { return self }
	var el *elector
	if o.Election.Enabled {
		el, err = newElector(o.Election, env.Client, o.Namespace, self, log, func() { cancel(errLostLease) })
		if err != nil {
			return err
		}
		leading, leader = el.Leading, el.Leader
	}
	targets := &kubeTargets{env: env}
	gov, err := startGovernance(ctx, env, targets, o.Audit, log)
	if err != nil {
		return err
	}
	defer gov.stop()
	authz := &apiserver.Authorizer{}
	newBackend := o.NewBackend
	if newBackend == nil {
		newBackend = defaultBackend
	}
	// The backend's goroutines end with ctx; Run returns after the
	// server, which ends every session first.
	b, err := newBackend(ctx, Deps{Env: env, Targets: targets, Authorizer: authz, Namespace: o.Namespace,
		AgentImage: o.AgentImage, AgentPullPolicy: corev1.PullPolicy(o.AgentPullPolicy), AgentPullSecrets: o.AgentPullSecrets,
		SessionTTL: o.SessionTTL, AgentTTL: o.AgentTTL, Version: o.Version, Log: log,
		Self: self, Leader: leader, Policies: gov.policies, TargetInfo: gov.targets.info, Auditor: gov.audit,
		QueueSplitting: o.QueueSplitting})
	if err != nil {
		return fmt.Errorf("start the session broker: %w", err)
	}
	status, err := gov.serve(ctx, b, o.MetricsAddr, log)
	if err != nil {
		return errors.Join(err, closeBackend(b))
	}
	srv, err := apiserver.New(apiserver.Config{Options: o.server, Version: o.Version, Targets: targets,
		Sessions: b, Broker: b, Status: status, BackendAuthorizer: authz, Leading: leading})
	if err != nil {
		return errors.Join(err, closeBackend(b))
	}
	log.Info("serving the operator API", "namespace", o.Namespace, "port", o.server.SecureServing.BindPort,
		"agentImage", o.AgentImage, "self", self, "leaderElection", o.Election.Enabled)
	if el != nil {
		// The election runs until the sessions have ended (ReleaseOnCancel
		// must not hand the Lease over while this replica still serves).
		elCtx, stopElection := context.WithCancel(context.WithoutCancel(ctx))
		el.run(elCtx)
		stopLeading := context.AfterFunc(ctx, el.end)
		defer func() {
			stopLeading()
			el.end()
			stopElection()
			el.wait()
		}()
	}
	stopWatch := watchShutdown(ctx, log, shutdownReport)
	defer stopWatch()
	err = srv.Run(ctx)
	err = errors.Join(err, closeBackend(b))
	if cause := context.Cause(ctx); errors.Is(cause, errLostLease) {
		err = errors.Join(cause, err)
	}
	return err
}

// shutdownReport is how long a stopping operator may take (its sessions
// cut, its agents' subscriptions removed) before it logs what it waits
// for: a follower takes over only once the Lease is released.
const shutdownReport = 10 * time.Second

// watchShutdown logs every goroutine's stack when the operator is still
// stopping after d; the returned function ends the watch.
func watchShutdown(ctx context.Context, log *slog.Logger, d time.Duration) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			var buf bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&buf, 2)
			log.Error("the operator is still stopping; what it waits for follows", "after", d, "goroutines", buf.String())
		case <-done:
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// replicaName is this replica's name: its pod's (POD_NAME, from the
// downward API), else the host's.
func replicaName() (string, error) {
	if pod := os.Getenv("POD_NAME"); pod != "" {
		return pod, nil
	}
	h, err := hostname()
	if err != nil {
		return "", fmt.Errorf("name this replica (set POD_NAME): %w", err)
	}
	return h, nil
}

// closeBackend closes b if it can be closed.
func closeBackend(b Backend) error {
	switch c := b.(type) {
	case interface{ Close() error }:
		if err := c.Close(); err != nil {
			return fmt.Errorf("stop the session broker: %w", err)
		}
	case interface{ Close() }:
		c.Close()
	}
	return nil
}

// loadEnv connects to the cluster: the service account in a pod, or a
// kubeconfig during development.
func loadEnv(kubeconfig, namespace string) (*kube.Env, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("load --kubeconfig %s: %w", kubeconfig, err)
		}
	} else {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("the operator runs in a Kubernetes pod (or pass --kubeconfig for development): %w", err)
		}
	}
	cfg.UserAgent = "remocal-operator"
	// client-go's default (5 requests/s, bursts of 10) would make one
	// listing of a busy namespace wait on the client's own rate limiter:
	// a listing asks for each ready workload's pods.
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build the Kubernetes client: %w", err)
	}
	return &kube.Env{Config: cfg, Client: cs, Namespace: namespace}, nil
}

// hostname is the pod's name in a Deployment.
var hostname = os.Hostname
