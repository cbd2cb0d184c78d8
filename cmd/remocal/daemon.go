package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/server/forward"
)

func newDaemonCmd() *cobra.Command {
	var (
		socket      string
		stdio       bool
		idleTimeout time.Duration
		logLevel    string
		kube        config.Kubernetes
	)
	cmd := &cobra.Command{
		Use:   "daemon [--stdio] [--socket PATH]",
		Short: "Run the shared remocal daemon that IDEs and scripts drive (JSON-RPC, LSP framing)",
		Long: `Without --stdio, serve the daemon on a per-user unix socket (0600, in
$XDG_RUNTIME_DIR/remocal or /tmp/remocal-UID) until it has had no clients and
no sessions for --idle-timeout.

With --stdio, be the process an IDE spawns: attach to the running daemon
(starting it, or replacing an older version that has no sessions) and relay
standard input and output to it. See docs/daemon-protocol.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if socket == "" {
				var err error
				if socket, err = server.DefaultSocket(); err != nil {
					return err
				}
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			if stdio {
				args := []string{"--idle-timeout", idleTimeout.String(), "--log-level", logLevel}
				if kube.Kubeconfig != "" {
					// The daemon may start elsewhere than in this directory.
					abs, err := filepath.Abs(kube.Kubeconfig)
					if err != nil {
						return err
					}
					args = append(args, "--kubeconfig", abs)
				}
				if kube.Context != "" {
					args = append(args, "--context", kube.Context)
				}
				conn, err := forward.Connect(cmd.Context(), forward.Options{Socket: socket, Self: self, Version: version,
					DaemonArgs: args})
				if err != nil {
					return err
				}
				return forward.Relay(conn, os.Stdin, os.Stdout)
			}
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			return serveDaemon(cmd.Context(), socket, self, idleTimeout, kube, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", "", "unix socket of the daemon (default: per-user runtime directory)")
	f.BoolVar(&stdio, "stdio", false, "relay standard input/output to the daemon, starting it if needed")
	f.DurationVar(&idleTimeout, "idle-timeout", 5*time.Minute, "exit after this long with no clients and no sessions (0: never)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&kube.Kubeconfig, "kubeconfig", "", "kubeconfig file whose cluster's targets to list (default: $KUBECONFIG, else ~/.kube/config; none: local targets only)")
	f.StringVar(&kube.Context, "context", "", "kubeconfig context (default: the current context)")
	return cmd
}

func serveDaemon(ctx context.Context, socket, self string, idle time.Duration, kube config.Kubernetes, lg *slog.Logger) error {
	if c, err := net.Dial("unix", socket); err == nil {
		c.Close()
		return fmt.Errorf("a remocal daemon already listens on %s", socket)
	}
	os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", socket, err)
	}
	os.Chmod(socket, 0o600)
	defer os.Remove(socket)
	set, err := server.NewTargets(kube, lg)
	if err != nil {
		l.Close()
		return err
	}
	remote := server.NewRemoteSessions(kube, lg)
	srv, err := server.New(server.Options{Version: version, Socket: socket, Self: self, IdleTimeout: idle,
		Targets: set, Remote: remote, Kubernetes: kube, Logger: lg})
	if err != nil {
		set.Close()
		if remote != nil {
			remote.Close()
		}
		l.Close()
		return err
	}
	lg.Info("daemon listening", "socket", socket, "version", version, "pid", os.Getpid())
	err = srv.Serve(ctx, l)
	if errors.Is(err, server.ErrIdle) {
		lg.Info("daemon exiting: idle")
		return nil
	}
	return err
}

// dialDaemon connects a command-line client, starting the daemon if needed.
func dialDaemon(ctx context.Context, socket string) (*daemonclient.Client, error) {
	if socket == "" {
		var err error
		if socket, err = server.DefaultSocket(); err != nil {
			return nil, err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	conn, err := forward.Connect(ctx, forward.Options{Socket: socket, Self: self, Version: version})
	if err != nil {
		return nil, err
	}
	wd, _ := os.Getwd()
	return daemonclient.New(ctx, conn, daemonclient.Options{Name: "remocal-cli", Version: version, Folders: []string{wd}})
}

func newRPCCmd() *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "rpc METHOD [PARAMS-JSON]",
		Short: "Call a daemon method and print its JSON result (for scripts)",
		Example: `  remocal rpc remocal/targets '{"kinds":["pid"]}'
  remocal rpc remocal/session/start '{"target":"pid/4242","workspaceFolder":"'$PWD'"}'`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var params any
			if len(args) == 2 {
				if err := json.Unmarshal([]byte(args[1]), &params); err != nil {
					return fmt.Errorf("params are not JSON: %v", err)
				}
			}
			c, err := dialDaemon(cmd.Context(), socket)
			if err != nil {
				return err
			}
			defer c.Close()
			var result json.RawMessage
			if err := c.Call(cmd.Context(), args[0], params, &result); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), result)
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "unix socket of the daemon")
	return cmd
}

func printJSON(w io.Writer, raw json.RawMessage) error {
	if len(raw) == 0 {
		raw = json.RawMessage("null")
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// listDaemonSessions prints the local daemon's sessions
// (`remocal sessions --daemon`).
func listDaemonSessions(cmd *cobra.Command, socket, output string) error {
	c, err := dialDaemon(cmd.Context(), socket)
	if err != nil {
		return err
	}
	defer c.Close()
	var res daemon.SessionListResult
	if err := c.Call(cmd.Context(), daemon.MethodSessionList, nil, &res); err != nil {
		return err
	}
	switch output {
	case "json":
		b, _ := json.Marshal(res)
		return printJSON(cmd.OutOrStdout(), b)
	case "table":
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTARGET\tSTATE\tINCOMING\tOWNER\tSTARTED\tFOLDER")
		for _, s := range res.Sessions {
			state := string(s.State)
			if s.Reason != "" {
				state += " (" + s.Reason + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Target, state, s.Incoming, s.Owner,
				s.StartedAt.Local().Format(time.TimeOnly), s.WorkspaceFolder)
		}
		return tw.Flush()
	}
	return fmt.Errorf("-o %q: use table or json", output)
}
