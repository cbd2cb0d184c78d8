package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/operator"
)

// newOperatorPoliciesCmd is `remocal operator policies`: which policies
// apply to a target (or to each target of a namespace) and what they
// allow, as the operator that enforces them evaluates them.
func newOperatorPoliciesCmd() *cobra.Command {
	var (
		kf     kubeFlags
		target string
		output string
	)
	cmd := &cobra.Command{
		Use:   "policies [-n NAMESPACE] [-t TARGET] [-o table|json]",
		Short: "Show which operator policies apply to a target and what they allow",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, env, err := operatorClient(cmd.Context(), kf)
			if err != nil {
				return err
			}
			var names []string
			if target != "" {
				t, err := config.ParseTarget(target)
				if err != nil {
					return err
				}
				if t.Kind == config.TargetPID {
					return fmt.Errorf("-t %s: policies apply to Kubernetes targets (deployment/NAME, pod/NAME ...)", target)
				}
				names = []string{operator.TargetName(string(t.Kind), t.Name)}
			} else {
				list, err := c.ListTargets(cmd.Context(), env.Namespace)
				if err != nil {
					return err
				}
				for _, t := range list.Items {
					names = append(names, t.Name)
				}
			}
			var targets []operator.Target
			for _, n := range names {
				t, err := c.GetTarget(cmd.Context(), env.Namespace, n)
				if err != nil {
					return err
				}
				targets = append(targets, *t)
			}
			if output == "json" {
				b, err := json.MarshalIndent(targets, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return err
			}
			return writePolicies(cmd.OutOrStdout(), env.Namespace, targets)
		},
	}
	kf.register(cmd.Flags())
	cmd.Flags().StringVarP(&target, "target", "t", "", "the target (deployment/api); default: every target of the namespace")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

// writePolicies prints each target's policies, one rule a line.
func writePolicies(w io.Writer, ns string, targets []operator.Target) error {
	if len(targets) == 0 {
		_, err := fmt.Fprintf(w, "no targets in namespace %s\n", ns)
		return err
	}
	for i, t := range targets {
		if i > 0 {
			fmt.Fprintln(w)
		}
		ref := t.Spec.Kind + "/" + t.Spec.Name
		if len(t.Status.Policies) == 0 {
			fmt.Fprintf(w, "%s (namespace %s): no policy applies; sessions may steal, mirror, and reach anything the pod reaches\n", ref, ns)
			continue
		}
		fmt.Fprintf(w, "%s (namespace %s):\n", ref, ns)
		for _, p := range t.Status.Policies {
			name := p.Name
			if p.Namespace != "" {
				name = p.Namespace + "/" + p.Name
			}
			fmt.Fprintf(w, "  %s %s\n", p.Kind, name)
			for _, r := range p.Rules {
				fmt.Fprintf(w, "    %s\n", strings.ReplaceAll(r, "\n", " "))
			}
		}
	}
	return nil
}
