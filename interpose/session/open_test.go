package session

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/protocol/config"
)

func TestOverridesApply(t *testing.T) {
	file := func() config.Config {
		return config.Config{Target: "deployment/api", Agent: config.Agent{Address: "unix:/run/a.sock", Image: "img"},
			Kubernetes: config.Kubernetes{Kubeconfig: "/k", Context: "prod", Namespace: "shop"},
			Network:    config.Network{Incoming: config.Incoming{Mode: config.IncomingSteal, Ports: []uint16{80}}}}
	}
	for _, tc := range []struct {
		name string
		o    Overrides
		want func(*config.Config)
	}{
		{"none keeps the file", Overrides{}, func(*config.Config) {}},
		{"target", Overrides{Target: "pod/api-1"}, func(c *config.Config) { c.Target = "pod/api-1" }},
		{"agent address", Overrides{AgentAddress: "tcp:127.0.0.1:7878"}, func(c *config.Config) { c.Agent.Address = "tcp:127.0.0.1:7878" }},
		{"kubeconfig only", Overrides{Kubernetes: config.Kubernetes{Kubeconfig: "/other"}},
			func(c *config.Config) { c.Kubernetes.Kubeconfig = "/other" }},
		{"context only", Overrides{Kubernetes: config.Kubernetes{Context: "dev"}}, func(c *config.Config) { c.Kubernetes.Context = "dev" }},
		{"namespace only", Overrides{Kubernetes: config.Kubernetes{Namespace: "default"}},
			func(c *config.Config) { c.Kubernetes.Namespace = "default" }},
		{"incoming mode, ports kept", Overrides{Incoming: config.IncomingOff}, func(c *config.Config) { c.Network.Incoming.Mode = config.IncomingOff }},
		{"all", Overrides{Target: "targetless", AgentAddress: "unix:/b", Incoming: config.IncomingMirror,
			Kubernetes: config.Kubernetes{Kubeconfig: "/x", Context: "c", Namespace: "n"}}, func(c *config.Config) {
			c.Target, c.Agent.Address, c.Network.Incoming.Mode = "targetless", "unix:/b", config.IncomingMirror
			c.Kubernetes = config.Kubernetes{Kubeconfig: "/x", Context: "c", Namespace: "n"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, want := file(), file()
			tc.o.apply(&got)
			tc.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("apply (-want +got):\n%s", diff)
			}
		})
	}
}

var errNoCluster = errors.New("no cluster in this test")

// Open refuses bad configurations before reaching anything, and hands
// Kubernetes targets to Cluster in their canonical spelling with the
// configuration the overrides made. Each case stops before Start: none
// needs a kernel feature or an agent.
func TestOpenBeforeStart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       *config.Config
		overrides Overrides
		cluster   bool
		// configPath is the first problem's path of a *config.Error.
		configPath string
		errHas     string
		wantRef    string
		wantKube   config.Kubernetes
	}{
		{name: "no configuration, no target", configPath: "$.target"},
		{name: "bad target", cfg: &config.Config{Target: "deployment/"}, configPath: "$.target"},
		{name: "bad pid", cfg: &config.Config{Target: "pid/0"}, configPath: "$.target"},
		{name: "bad target from the overrides", cfg: &config.Config{Target: "pod/api"}, overrides: Overrides{Target: "nonsense/x"}, configPath: "$.target"},
		{name: "bad namespace from the overrides", cfg: &config.Config{Target: "pod/api"},
			overrides: Overrides{Kubernetes: config.Kubernetes{Namespace: "Not_A_Namespace"}}, configPath: "$.kubernetes.namespace"},
		{name: "bad agent address", cfg: &config.Config{Target: "pod/api"}, overrides: Overrides{AgentAddress: "localhost:7878"},
			configPath: "$.agent.address"},
		{name: "kubernetes target without a cluster client", cfg: &config.Config{Target: "deploy/api"},
			errHas: "is a Kubernetes target, which this program cannot reach"},
		{name: "kubernetes target", cfg: &config.Config{Target: "deploy/api", Kubernetes: config.Kubernetes{Context: "prod"}},
			overrides: Overrides{Kubernetes: config.Kubernetes{Namespace: "shop"}}, cluster: true,
			wantRef: "deployment/api", wantKube: config.Kubernetes{Context: "prod", Namespace: "shop"}},
		{name: "kubernetes target with container", cfg: &config.Config{Target: "svc/web/container/app"}, cluster: true,
			wantRef: "service/web/container/app"},
		{name: "targetless", cfg: &config.Config{Target: "targetless"}, cluster: true, wantRef: "targetless"},
		{name: "target from the overrides", cfg: &config.Config{Target: "pod/a"}, overrides: Overrides{Target: "sts/db"}, cluster: true,
			wantRef: "statefulset/db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before config.Config
			if tc.cfg != nil {
				before = *tc.cfg
			}
			var gotRef string
			var gotOpts connect.Options
			o := OpenOptions{Options: Options{Config: tc.cfg, Self: "/usr/bin/remocal", Version: "1.2.3"}, Overrides: tc.overrides,
				OnConnector: func(connect.Connector) { t.Error("OnConnector called without a connector") }}
			if tc.cluster {
				o.Cluster = func(ref string, co connect.Options) (connect.Connector, error) {
					gotRef, gotOpts = ref, co
					return nil, errNoCluster
				}
			}
			sess, conn, err := Open(context.Background(), o)
			if sess != nil || conn != nil {
				t.Fatalf("Open = %v, %v: want no session", sess, conn)
			}
			var ce *config.Error
			switch {
			case tc.configPath != "":
				if !errors.As(err, &ce) || len(ce.Problems) == 0 || ce.Problems[0].Path != tc.configPath {
					t.Errorf("Open error %v (%T), want a *config.Error at %s", err, err, tc.configPath)
				}
			case tc.errHas != "":
				if err == nil || !strings.Contains(err.Error(), tc.errHas) || errors.As(err, &ce) {
					t.Errorf("Open error %v, want one saying %q", err, tc.errHas)
				}
			default:
				if !errors.Is(err, errNoCluster) {
					t.Fatalf("Open error %v, want Cluster's", err)
				}
				wantKube := tc.wantKube
				if wantKube.Transport == "" {
					wantKube.Transport = config.TransportAuto // the default, applied like the others
				}
				if gotRef != tc.wantRef || gotOpts.Kube != wantKube || gotOpts.Self != "/usr/bin/remocal" || gotOpts.Version != "1.2.3" {
					t.Errorf("Cluster(%q, kube %+v, self %q, version %q); want %q, %+v", gotRef, gotOpts.Kube, gotOpts.Self, gotOpts.Version, tc.wantRef, wantKube)
				}
				// Defaults are applied before the connector is made.
				if gotOpts.Agent.IdleTTL != config.DefaultIdleTTL || gotOpts.Agent.ImagePullPolicy != "IfNotPresent" {
					t.Errorf("agent options %+v: want the defaults applied", gotOpts.Agent)
				}
			}
			if tc.cfg != nil {
				if diff := cmp.Diff(before, *tc.cfg); diff != "" {
					t.Errorf("Open changed the caller's configuration (-before +after):\n%s", diff)
				}
			}
		})
	}
}
