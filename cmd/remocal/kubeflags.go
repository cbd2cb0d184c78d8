package main

import (
	"github.com/spf13/pflag"

	"github.com/remocal/remocal/protocol/config"
)

// kubeFlags are kubectl's cluster-selection flags; set ones override the
// configuration file's "kubernetes" section.
type kubeFlags struct{ config.Kubernetes }

func (k *kubeFlags) register(f *pflag.FlagSet) {
	f.StringVar(&k.Kubeconfig, "kubeconfig", "", "kubeconfig file for Kubernetes targets (default: $KUBECONFIG, else ~/.kube/config)")
	f.StringVar(&k.Context, "context", "", "kubeconfig context (default: the current context)")
	f.StringVarP(&k.Namespace, "namespace", "n", "", "namespace of the target (default: the context's namespace)")
}

// apply overlays the flags that were given on the configuration.
func (k *kubeFlags) apply(c *config.Kubernetes) {
	if k.Kubeconfig != "" {
		c.Kubeconfig = k.Kubeconfig
	}
	if k.Context != "" {
		c.Context = k.Context
	}
	if k.Namespace != "" {
		c.Namespace = k.Namespace
	}
}
