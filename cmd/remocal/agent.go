package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/remocal/remocal/agent"
	"github.com/remocal/remocal/agent/target"
	"github.com/remocal/remocal/protocol/wire"
)

func agentProtocol() string { return wire.Current.String() }

func newAgentCmd() *cobra.Command {
	var (
		pid         int
		containerID string
		targetless  bool
		name        string
		listen      string
		idleTTL     time.Duration
		logLevel    string
		nodeIPs     []string
	)
	cmd := &cobra.Command{
		Use:   "agent --target-pid PID [--listen ADDR]",
		Short: "Serve remocal clients from beside a target process",
		Long: `The agent enters the target's network namespace for the work that needs it,
reads its files through /proc/PID/root and its environment through
/proc/PID/environ, and serves any number of clients. It exits when the target
exits, and after --idle-ttl without clients.

Once listening it prints one line to standard output:
  remocal-agent listening on ADDR
where ADDR is what clients pass to connect (tcp:HOST:PORT or unix:PATH).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var loc target.Locator
			switch {
			case pid > 0 && containerID == "" && !targetless:
				loc = target.PID(pid)
			case containerID != "" && pid == 0 && !targetless:
				loc = target.Container{ID: containerID, Name: name}
			case targetless && pid == 0 && containerID == "":
				loc = target.Targetless{}
			default:
				return errors.New("give exactly one of --target-pid PID, --container-id ID (with hostPID, on the container's node) or --targetless")
			}
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			var nodeAddrs []netip.Addr
			for _, s := range nodeIPs {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return fmt.Errorf("--node-ip %q is not an IP address", s)
				}
				nodeAddrs = append(nodeAddrs, a)
			}
			return runAgent(cmd.Context(), log, loc, listen, idleTTL, targetless, nodeAddrs)
		},
	}
	cmd.Flags().IntVar(&pid, "target-pid", 0, "PID of the target process")
	cmd.Flags().StringVar(&containerID, "container-id", "", "serve this container (as in the pod's status, e.g. containerd://4f1c...); needs hostPID")
	cmd.Flags().BoolVar(&targetless, "targetless", false, "serve no process: outgoing connections and DNS from the agent's own network")
	cmd.Flags().StringVar(&name, "target-name", "", "how clients see the target, e.g. deployment/api (default: derived)")
	cmd.Flags().StringVar(&listen, "listen", "tcp:127.0.0.1:0", "where clients connect: tcp:HOST:PORT or unix:PATH")
	cmd.Flags().DurationVar(&idleTTL, "idle-ttl", time.Minute, "exit after this long without clients (0: never)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error (logs go to standard error)")
	cmd.Flags().StringSliceVar(&nodeIPs, "node-ip", nil, "the node's address(es), where kubelet probes come from besides the target's gateway: they are never stolen")
	return cmd
}

func runAgent(ctx context.Context, log *slog.Logger, loc target.Locator, listen string, idleTTL time.Duration, targetless bool, nodeAddrs []netip.Addr) error {
	proc, err := loc.Locate(ctx)
	if err != nil {
		return err
	}
	defer proc.Close()
	a, err := agent.New(agent.Config{Target: proc, Version: version, IdleTTL: idleTTL, Logger: log, Targetless: targetless, NodeAddrs: nodeAddrs})
	if err != nil {
		return err
	}
	l, addr, err := listenOn(listen)
	if err != nil {
		return err
	}
	fmt.Printf("remocal-agent listening on %s\n", addr)
	log.Info("agent serving", "listen", addr, "targetPid", proc.PID())
	err = a.Serve(ctx, l)
	switch {
	case errors.Is(err, agent.ErrTargetExited), errors.Is(err, agent.ErrIdle):
		log.Info("agent exiting", "reason", err)
		return nil
	}
	return err
}

// listenOn parses tcp:HOST:PORT, unix:PATH or HOST:PORT.
func listenOn(spec string) (net.Listener, string, error) {
	network, addr := "tcp", spec
	switch {
	case strings.HasPrefix(spec, "unix:"):
		network, addr = "unix", strings.TrimPrefix(spec, "unix:")
		// A stale socket file from a killed agent would make bind fail.
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(addr)
		}
	case strings.HasPrefix(spec, "tcp:"):
		addr = strings.TrimPrefix(spec, "tcp:")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w (use --listen tcp:HOST:PORT or unix:PATH)", spec, err)
	}
	if network == "unix" {
		os.Chmod(addr, 0o600)
		return l, "unix:" + addr, nil
	}
	return l, "tcp:" + l.Addr().String(), nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
