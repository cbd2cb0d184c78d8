package main

import "github.com/spf13/cobra"

// newOperatorCmd is `remocal operator`: commands that talk to the
// cluster's operator. The operator itself is the remocal-operator binary
// (cmd/remocal-operator), kept out of this one for its size and start-up
// cost.
func newOperatorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Talk to the cluster's remocal operator (the operator itself is remocal-operator)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newOperatorStatusCmd(), newOperatorPoliciesCmd())
	return cmd
}
