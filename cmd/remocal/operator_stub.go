package main

import "github.com/spf13/cobra"

// newOperatorCmd stands in for `remocal operator` until the branch that
// runs the operator (op-api, cmd/remocal/operator.go) is merged: delete
// this file then, and keep main.go attaching newOperatorStatusCmd to the
// real command.
func newOperatorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "operator",
		Short: "The cluster's remocal operator",
		Args:  cobra.NoArgs,
	}
}
