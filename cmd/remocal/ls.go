package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
)

// lsTimeout bounds a listing: an unreachable cluster should fail, not hang.
const lsTimeout = 30 * time.Second

func newLsCmd() *cobra.Command {
	var (
		kf            kubeFlags
		configFile    string
		allNamespaces bool
		output        string
		kinds         []string
		operatorMode  string
	)
	cmd := &cobra.Command{
		Use:   "ls [-n NAMESPACE | -A] [--kind KIND,...] [-o table|json]",
		Short: "List the Kubernetes targets sessions can run in, with their readiness and containers",
		Long: `Lists pods, deployments, statefulsets, replicasets, jobs, cronjobs and services of a
namespace (the context's, -n, or the configuration's kubernetes.namespace) or of all
namespaces (-A): the TARGET to pass to remocal exec -t, whether a session can start on
it now (READY), why not (STATUS), and the containers to pick with /container/NAME
(known sidecars such as istio-proxy are left out; the first is the default).

The cluster is chosen like kubectl does, or by the configuration file's "kubernetes"
section; flags override it. -o json prints the same JSON as the daemon's
remocal/targets (see docs/daemon-protocol.md).`,
		Example: `  remocal ls
  remocal ls -A --kind deployment,statefulset
  remocal ls -n shop -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: use table or json", output)
			}
			if allNamespaces && kf.Namespace != "" {
				return errors.New("-A lists every namespace and -n one of them; pass only one")
			}
			wanted, err := parseKinds(kinds)
			if err != nil {
				return err
			}
			cfg, file, err := loadConfig(configFile)
			if err != nil {
				return err
			}
			if err := checkFileConfig(cfg, file, "", kf.Kubeconfig); err != nil {
				return err
			}
			kf.apply(&cfg.Kubernetes)
			env, err := kube.Load(cfg.Kubernetes)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), lsTimeout)
			defer cancel()
			viaOperator, err := useOperator(ctx, env, cfg.Operator, operatorMode)
			if err != nil {
				return err
			}
			var list []daemon.Target
			if viaOperator {
				// What the operator's RBAC lets this user see; no rights on
				// pods or workloads needed.
				list, err = kube.OperatorTargets(ctx, env, "", allNamespaces, wanted...)
			} else {
				list, err = kube.List(ctx, env, "", allNamespaces, wanted...)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("the Kubernetes API (context %s) did not answer within %s; is the cluster reachable (kubectl cluster-info)? %w", env.Context, lsTimeout, err)
			}
			if err != nil {
				return err
			}
			if output == "json" {
				b, err := json.Marshal(daemon.TargetsResult{Targets: list})
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), b)
			}
			if len(list) == 0 {
				where := "in namespace " + env.Namespace
				if allNamespaces {
					where = "in any namespace"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "No targets found %s.\n", where)
				return nil
			}
			return printTargets(cmd, list, allNamespaces)
		},
	}
	f := cmd.Flags()
	kf.register(f)
	f.Lookup("namespace").Usage = "namespace to list (default: the configuration's kubernetes.namespace, else the context's)"
	f.BoolVarP(&allNamespaces, "all-namespaces", "A", false, "list every namespace")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	f.StringSliceVar(&kinds, "kind", nil, "list only these kinds: "+kube.KindNames()+" (kubectl's short names work too)")
	f.StringVarP(&configFile, "config", "f", "", "configuration file for its kubernetes section (default: .remocal/config.json from the working directory upward)")
	f.StringVar(&operatorMode, "operator", "", `list through the cluster's remocal operator: auto (if it has one), true or false (default: the configuration's "operator", else auto)`)
	return cmd
}

// useOperator decides whether to go through the operator: the flag, else
// the configuration, else auto (when the cluster has an available one).
func useOperator(ctx context.Context, env *kube.Env, configured config.OperatorMode, flag string) (bool, error) {
	mode := configured
	if flag != "" {
		m, err := config.ParseOperatorMode(flag)
		if err != nil {
			return false, fmt.Errorf("--operator %v", err)
		}
		mode = m
	}
	if mode == config.OperatorNever {
		return false, nil
	}
	err := kube.DetectOperator(ctx, env)
	var oe *kube.OperatorError
	switch {
	case err == nil:
		return true, nil
	case mode == config.OperatorAlways && errors.As(err, &oe):
		return false, fmt.Errorf("operator: true, but %w; or pass --operator auto or false", err)
	case mode == config.OperatorAlways:
		return false, err
	}
	// auto: no usable operator, or the cluster did not answer (the direct
	// listing says so in its own words).
	return false, nil
}

// parseKinds accepts the kinds as target refs spell them, and kubectl's
// short and plural names (deploy, svc, pods ...).
func parseKinds(kinds []string) ([]config.TargetKind, error) {
	var out []config.TargetKind
	for _, k := range kinds {
		k = strings.ToLower(strings.TrimSpace(k))
		kind, ok := config.ParseKind(k)
		if !ok {
			return nil, fmt.Errorf("--kind %q: use one or more of %s (comma-separated)", k, kube.KindNames())
		}
		if !slices.Contains(out, kind) {
			out = append(out, kind)
		}
	}
	return out, nil
}

func printTargets(cmd *cobra.Command, list []daemon.Target, withNamespace bool) error {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	header := "TARGET\tREADY\tSTATUS\tCONTAINERS"
	if withNamespace {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, t := range list {
		ready := "no"
		if t.Ready {
			ready = "yes"
		}
		containers := strings.Join(t.Containers, ",")
		if containers == "" {
			containers = "-"
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s", t.Ref, ready, t.Status, containers)
		if withNamespace {
			row = t.Namespace + "\t" + row
		}
		fmt.Fprintln(tw, row)
	}
	return tw.Flush()
}
