package main

import (
	"github.com/spf13/cobra"

	"github.com/remocal/remocal/operator"
)

// newOperatorCmd is `remocal operator`: it runs the operator; its
// subcommands (`remocal operator status` ...) talk to a running one.
func newOperatorCmd() *cobra.Command {
	o := operator.NewOptions(version)
	var logLevel string
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Run the remocal operator (in the cluster; usually installed with the Helm chart)",
		Long: `The operator serves the operator.remocal.dev API, registered with the
cluster's kube-apiserver by an APIService: users reach it with their own
kubeconfig, Kubernetes authenticates them (the operator trusts the
kube-apiserver's front-proxy headers, or checks a token with a TokenReview),
and RBAC authorizes every call (SubjectAccessReview). It lists targets,
brokers sessions to the agents it runs in its own namespace, and reports
them as sessions. See docs/operator.md.

Serving: --secure-port, and --tls-cert-file with --tls-private-key-file
(without them a self-signed certificate is made in --cert-dir). The
--authentication-* , --requestheader-* , --client-ca-file and --authorization-*
flags are those of every aggregated API server; their defaults read the
cluster's configuration with the operator's service account.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			o.Log = log
			return operator.Run(cmd.Context(), o)
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
