package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/protocol/operator"
)

// checkOutput accepts the -o values of the operator commands.
func checkOutput(output string) error {
	if output != "table" && output != "json" {
		return fmt.Errorf("-o %q: use table or json", output)
	}
	return nil
}

// operatorClient loads the kubeconfig kf names and finds the cluster's
// operator. Discovery comes first: it tells "not installed" from "not
// answering" from "not allowed to read it".
func operatorClient(ctx context.Context, kf kubeFlags) (*kube.OperatorClient, *kube.Env, error) {
	env, err := kube.Load(kf.Kubernetes)
	if err != nil {
		return nil, nil, err
	}
	if err := kube.DetectOperator(ctx, env); err != nil {
		return nil, nil, err
	}
	c, err := kube.NewOperatorClient(env)
	if err != nil {
		return nil, nil, err
	}
	return c, env, nil
}

// newOperatorStatusCmd is `remocal operator status`: whether the cluster
// has an operator, and its state.
func newOperatorStatusCmd() *cobra.Command {
	var (
		kf     kubeFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "status [-o table|json]",
		Short: "Show whether the cluster has a remocal operator, and its state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, env, err := operatorClient(cmd.Context(), kf)
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				b, err := json.MarshalIndent(st, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return err
			}
			return writeOperatorStatus(cmd.OutOrStdout(), env.Context, st.Status, time.Now())
		},
	}
	kf.register(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

// writeOperatorStatus prints the operator's state for humans.
func writeOperatorStatus(w io.Writer, context string, st operator.OperatorState, now time.Time) error {
	health := "healthy"
	if !st.Healthy {
		health = "unhealthy"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "operator:\t%s (API %s, context %q)\n", health, operator.APIServiceName, context)
	fmt.Fprintf(tw, "version:\t%s\n", st.Version)
	fmt.Fprintf(tw, "leader:\t%s\n", orDash(st.Leader))
	fmt.Fprintf(tw, "answered by:\t%s\n", orDash(st.Self))
	fmt.Fprintf(tw, "sessions:\t%d\n", st.Sessions)
	fmt.Fprintf(tw, "agents:\t%d\n", len(st.Agents))
	for _, p := range st.Problems {
		fmt.Fprintf(tw, "problem:\t%s\n", p)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := writeTargetsAndDenials(w, st, now); err != nil {
		return err
	}
	if err := writeQueueSplits(w, st.QueueSplits); err != nil {
		return err
	}
	if len(st.Agents) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET POD\tAGENT\tSESSIONS\tIDLE")
	for _, a := range st.Agents {
		idle := "-"
		if a.IdleSince != nil {
			idle = duration.HumanDuration(now.Sub(a.IdleSince.Time))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Pod, a.Agent, strconv.Itoa(a.Sessions), idle)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeTargetsAndDenials prints the live sessions per target and the
// latest policy denials (the five newest).
func writeTargetsAndDenials(w io.Writer, st operator.OperatorState, now time.Time) error {
	if len(st.Targets) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAMESPACE\tTARGET\tSESSIONS\tUSERS")
		for _, t := range st.Targets {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", t.Namespace, t.Target, t.Sessions, strings.Join(t.Users, ","))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.RecentDenials) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "recent policy denials:")
		for i, d := range st.RecentDenials {
			if i == 5 {
				fmt.Fprintf(w, "  ... %d more (-o json)\n", len(st.RecentDenials)-5)
				break
			}
			fmt.Fprintf(w, "  %s ago  %s  %s/%s  %s: %s, rule %s\n", duration.HumanDuration(now.Sub(d.Time.Time)), d.User, d.Namespace, d.Target, d.What, d.Policy, d.Rule)
		}
	}
	return nil
}

// writeQueueSplits prints the queues split now: one line per queue (the
// deployed consumer's share), one per session splitting it.
func writeQueueSplits(w io.Writer, qs []operator.QueueState) error {
	if len(qs) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tCONSUMER/QUEUE\tPHASE\tTO\tMODE\tFILTER\tDELIVERED")
	for _, q := range qs {
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t-\t-\t%d of %d\n", q.Namespace, q.Consumer, q.Queue, q.Phase, "deployed consumer", q.Deployed, q.Routed)
		for _, s := range q.Sessions {
			fmt.Fprintf(tw, "\t\t\t%s (%s)\t%s\t%s\t%d\n", s.User, s.Session, s.Mode, s.Filter.String(), s.Delivered)
		}
	}
	return tw.Flush()
}
