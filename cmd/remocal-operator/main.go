// Command remocal-operator runs the remocal operator in a cluster (usually
// installed with the Helm chart in charts/remocal; see docs/operator.md).
//
// It is a binary of its own, not a `remocal` subcommand, because the
// Kubernetes API server libraries it links cost every process that runs
// the remocal binary: measured on this machine, `remocal version` went
// from 37 MB to 58 MB resident and from 20 ms to 50 ms, and the
// interposition launcher, keeper and session host are remocal processes
// too (docs/performance.md). `remocal operator status` talks to a running
// operator from the CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/remocal/remocal/operator"
)

// version is stamped by the build (-X main.version=...).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "remocal-operator:", err)
		os.Exit(1)
	}
}

func newCmd() *cobra.Command {
	o := operator.NewOptions(version)
	var logLevel string
	var showVersion bool
	cmd := &cobra.Command{
		Use:   "remocal-operator",
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
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVersion {
				fmt.Fprintln(cmd.OutOrStdout(), "remocal-operator", version)
				return nil
			}
			var l slog.Level
			if err := l.UnmarshalText([]byte(logLevel)); err != nil {
				return errors.New("--log-level " + logLevel + ": use debug, info, warn or error")
			}
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
			return operator.Run(cmd.Context(), o)
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().BoolVar(&showVersion, "version", false, "print the version and exit")
	return cmd
}
