// Package kube reaches agents for Kubernetes targets: it loads credentials
// the way kubectl does, resolves a target reference (pod, deployment, ...,
// service, label selector) to one running container, finds or starts the
// agent beside it (a Job on the pod's node, or an ephemeral container), and
// connects to the agent through a port-forward.
package kube

import (
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/remocal/remocal/protocol/config"
)

// Flags select credentials like kubectl's flags of the same names; the
// configuration file's "kubernetes" section holds the same.
type Flags = config.Kubernetes

var quietOnce sync.Once

// Env is a loaded cluster connection.
type Env struct {
	Config    *rest.Config
	Client    kubernetes.Interface
	Namespace string // from --namespace or the context
	Context   string
}

// Load reads credentials: --kubeconfig, else $KUBECONFIG (a list of files),
// else ~/.kube/config; --context, else the current context; exec credential
// plugins run as kubectl would run them.
func Load(f Flags) (*Env, error) {
	quietOnce.Do(func() {
		// client-go reports through klog, on standard error, things remocal
		// handles itself (a watch ended because its context did); the
		// user's terminal belongs to the program being run.
		klog.SetLogger(logr.Discard())
	})
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: f.Context}
	if f.Namespace != "" {
		overrides.Context.Namespace = f.Namespace
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		return nil, fmt.Errorf("no Kubernetes credentials found for a Kubernetes target: set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config (kubectl config view shows what is loaded)")
	}
	if err != nil {
		return nil, fmt.Errorf("load Kubernetes credentials (kubeconfig %q, context %q): %w", f.Kubeconfig, f.Context, err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("read the namespace of the Kubernetes context: %w", err)
	}
	raw, _ := cc.RawConfig()
	ctxName := f.Context
	if ctxName == "" {
		ctxName = raw.CurrentContext
	}
	cfg.UserAgent = "remocal"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Env{Config: cfg, Client: cs, Namespace: ns, Context: ctxName}, nil
}
