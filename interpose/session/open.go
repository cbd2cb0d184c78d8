package session

import (
	"context"
	"fmt"
	"os"

	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/protocol/config"
)

// Overrides are one run's settings on top of the configuration file:
// remocal exec's flags, or a daemon session's parameters. Empty fields keep
// the file's values.
type Overrides struct {
	Target       string
	AgentAddress string
	// AgentSecretFile and AgentInsecure go with AgentAddress
	// (connect.Options); flags only, never the configuration file.
	AgentSecretFile string
	AgentInsecure   bool
	Kubernetes      config.Kubernetes
	Incoming        config.IncomingMode
	// Operator is --operator; OnConflict a run's network.incoming.onConflict.
	Operator   config.OperatorMode
	OnConflict config.OnConflict
}

// apply overlays the set fields on c.
func (o Overrides) apply(c *config.Config) {
	if o.Target != "" {
		c.Target = o.Target
	}
	if o.AgentAddress != "" {
		c.Agent.Address = o.AgentAddress
	}
	if o.Kubernetes.Kubeconfig != "" {
		c.Kubernetes.Kubeconfig = o.Kubernetes.Kubeconfig
	}
	if o.Kubernetes.Context != "" {
		c.Kubernetes.Context = o.Kubernetes.Context
	}
	if o.Kubernetes.Namespace != "" {
		c.Kubernetes.Namespace = o.Kubernetes.Namespace
	}
	if o.Kubernetes.Transport != "" {
		c.Kubernetes.Transport = o.Kubernetes.Transport
	}
	if o.Incoming != "" {
		c.Network.Incoming.Mode = o.Incoming
	}
	if o.Operator != "" {
		c.Operator = o.Operator
	}
	if o.OnConflict != "" {
		c.Network.Incoming.OnConflict = o.OnConflict
	}
}

// OpenOptions are a session's Options, except that Open makes the
// Connector from the configuration.
type OpenOptions struct {
	Options
	Overrides Overrides
	// Cluster reaches Kubernetes targets (kube.NewConnector); nil refuses
	// them. Interposition itself never depends on a cluster client.
	Cluster func(ref string, o connect.Options) (connect.Connector, error)
	// OnConnector, if set, is given the connector before the session
	// starts (what it describes can change once connected).
	OnConnector func(connect.Connector)
}

// Open is the one way a session starts, for remocal exec and the daemon's
// session hosts alike: the configuration with the run's overrides,
// validated (an invalid one is a *config.Error), with its defaults; the
// connector its target needs; then Start. The connector is returned for
// what it says about the target once connected (Describe, and Note for
// Kubernetes targets).
func Open(ctx context.Context, o OpenOptions) (*Session, connect.Connector, error) {
	cfg := &config.Config{}
	if o.Config != nil {
		c := *o.Config // the caller's stays as it was
		cfg = &c
	}
	o.Overrides.apply(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	cfg = cfg.WithDefaults()
	if o.Self == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, nil, fmt.Errorf("find the remocal binary: %w", err)
		}
		o.Self = self
	}
	conn, err := connect.For(cfg.Target, connect.Options{Self: o.Self, AgentAddress: cfg.Agent.Address,
		AgentSecretFile: o.Overrides.AgentSecretFile, AgentInsecure: o.Overrides.AgentInsecure,
		Stderr: o.Stderr, Kube: cfg.Kubernetes, Agent: cfg.Agent, Version: o.Version, Cluster: o.Cluster,
		Operator: cfg.Operator})
	if err != nil {
		return nil, nil, err
	}
	if o.OnConnector != nil {
		o.OnConnector(conn)
	}
	opts := o.Options
	opts.Config, opts.Connector = cfg, conn
	sess, err := Start(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	return sess, conn, nil
}
