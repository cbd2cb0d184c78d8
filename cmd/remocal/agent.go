package main

import (
	"context"
	"crypto/tls"
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
	"github.com/remocal/remocal/internal/agenttls"
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
		secretFile  string
		secretEnv   string
		insecure    bool
		tlsCert     string
		tlsKey      string
		tlsListen   string
	)
	cmd := &cobra.Command{
		Use:   "agent --target-pid PID [--listen ADDR]",
		Short: "Serve remocal clients from beside a target process",
		Long: `The agent enters the target's network namespace for the work that needs it,
reads its files through /proc/PID/root and its environment through
/proc/PID/environ, and serves any number of clients. It exits when the target
exits, and after --idle-ttl without clients.

Clients prove they hold the agent's key (--secret-file, or --secret-env for
an ephemeral container, whose pod cannot gain a volume), and the agent proves
it to them. An agent on a unix socket may run without a key: the socket is
made 0600, so only its user can connect. On TCP an agent without a key
serves whoever reaches the port, and starts only with --insecure.

With --tls-listen the agent also serves TLS on a second address (its pod's, for
clients that reach the pod network directly), while --listen stays plain (the
loopback address a port-forward reaches); without it, --tls-cert-file makes
--listen itself TLS.

Once listening it prints one line to standard output:
  remocal-agent listening on ADDR
where ADDR is what clients pass to connect (tcp:HOST:PORT or unix:PATH), and
with --tls-listen a second line:
  remocal-agent serving TLS on tcp:HOST:PORT`,
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
			key, err := agentKey(secretFile, secretEnv)
			if err != nil {
				return err
			}
			var tlsCfg *tls.Config
			switch {
			case (tlsCert == "") != (tlsKey == ""):
				return errors.New("give --tls-cert-file and --tls-key-file together")
			case tlsListen != "" && tlsCert == "":
				return errors.New("--tls-listen needs --tls-cert-file and --tls-key-file")
			case tlsListen != "" && strings.HasPrefix(tlsListen, "unix:"):
				return errors.New("--tls-listen is a TCP address (tcp:HOST:PORT); a unix socket is served without TLS")
			case tlsCert != "" && tlsListen == "" && strings.HasPrefix(listen, "unix:"):
				return errors.New("--tls-cert-file is for a TCP listener; a unix socket is served without TLS")
			case tlsCert != "":
				if tlsCfg, err = agenttls.ServerConfig(tlsCert, tlsKey); err != nil {
					return err
				}
			}
			return runAgent(cmd.Context(), log, loc, listeners{plain: listen, tls: tlsListen, tlsCfg: tlsCfg}, idleTTL, targetless, nodeAddrs, key, insecure)
		},
	}
	cmd.Flags().IntVar(&pid, "target-pid", 0, "PID of the target process")
	cmd.Flags().StringVar(&containerID, "container-id", "", "serve this container (as in the pod's status, e.g. containerd://4f1c...); needs hostPID")
	cmd.Flags().BoolVar(&targetless, "targetless", false, "serve no process: outgoing connections and DNS from the agent's own network")
	cmd.Flags().StringVar(&name, "target-name", "", "how clients see the target, e.g. deployment/api (default: derived)")
	cmd.Flags().StringVar(&listen, "listen", "tcp:127.0.0.1:0", "where clients connect: tcp:HOST:PORT or unix:PATH")
	cmd.Flags().DurationVar(&idleTTL, "idle-ttl", time.Minute, "exit after this long without clients (0: never)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error (logs go to standard error)")
	cmd.Flags().StringVar(&secretFile, "secret-file", "", "the agent's key: clients must prove they hold it, and the agent proves it to them")
	cmd.Flags().StringVar(&secretEnv, "secret-env", "", "like --secret-file, from this environment variable (an ephemeral container's Secret)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "listen on TCP without a key, serving anyone who can reach the port")
	cmd.Flags().StringVar(&tlsCert, "tls-cert-file", "", "serve TLS on the TCP listener with this certificate (PEM; the operator pins it), the key proof runs inside")
	cmd.Flags().StringVar(&tlsKey, "tls-key-file", "", "the private key of --tls-cert-file (PEM)")
	cmd.Flags().StringVar(&tlsListen, "tls-listen", "", "also serve TLS (--tls-cert-file) here, tcp:HOST:PORT, for clients that reach the pod directly; --listen stays plain")
	cmd.Flags().StringSliceVar(&nodeIPs, "node-ip", nil, "the node's address(es), where kubelet probes come from besides the target's gateway: they are never stolen")
	return cmd
}

// agentKey reads the key from a file or an environment variable, if given.
func agentKey(file, env string) ([]byte, error) {
	switch {
	case file != "" && env != "":
		return nil, errors.New("give the key with --secret-file or --secret-env, not both")
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read the agent's key: %w", err)
		}
		key, err := wire.ParseKey(data)
		if err != nil {
			return nil, fmt.Errorf("--secret-file %s: %w", file, err)
		}
		return key, nil
	case env != "":
		key, err := wire.ParseKey([]byte(os.Getenv(env)))
		if err != nil {
			return nil, fmt.Errorf("--secret-env %s: %w", env, err)
		}
		// Not inherited by anything the agent starts.
		os.Unsetenv(env)
		return key, nil
	}
	return nil, nil
}

// listeners are where the agent serves: plain, or with TLS when tlsCfg is
// set and tls is empty; and with tls set, TLS there besides plain.
type listeners struct {
	plain, tls string
	tlsCfg     *tls.Config
}

// open binds them, the TLS listener first: a client that reached the
// plain one (a port-forward) knows the TLS one listens too, so a refused
// direct dial then means the pod network is closed, not the agent late.
func (ls listeners) open() (l net.Listener, addr, tlsAddr string, err error) {
	var direct net.Listener
	if ls.tls != "" {
		var dl net.Listener
		if dl, tlsAddr, err = listenOn(ls.tls); err != nil {
			return nil, "", "", err
		}
		direct = tls.NewListener(dl, ls.tlsCfg)
	}
	if l, addr, err = listenOn(ls.plain); err != nil {
		if direct != nil {
			direct.Close()
		}
		return nil, "", "", err
	}
	switch {
	case direct != nil:
		return newMultiListener(direct, l), addr, tlsAddr, nil
	case ls.tlsCfg != nil:
		return tls.NewListener(l, ls.tlsCfg), addr, "", nil
	}
	return l, addr, "", nil
}

func runAgent(ctx context.Context, log *slog.Logger, loc target.Locator, ls listeners, idleTTL time.Duration, targetless bool, nodeAddrs []netip.Addr, key []byte, insecure bool) error {
	proc, err := loc.Locate(ctx)
	if err != nil {
		return err
	}
	if key == nil && (!strings.HasPrefix(ls.plain, "unix:") || ls.tls != "") && !insecure {
		proc.Close()
		return fmt.Errorf("--listen %s without a key would serve anyone who can reach the port: give the agent a key (--secret-file FILE with at least %d bytes; clients pass the same file with --agent-secret-file), listen on unix:PATH, or pass --insecure", ls.plain, wire.MinKeySize)
	}
	defer proc.Close()
	a, err := agent.New(agent.Config{Target: proc, Version: version, IdleTTL: idleTTL, Logger: log, Targetless: targetless, NodeAddrs: nodeAddrs, Key: key})
	if err != nil {
		return err
	}
	l, addr, tlsAddr, err := ls.open()
	if err != nil {
		return err
	}
	fmt.Printf("remocal-agent listening on %s\n", addr)
	if tlsAddr != "" {
		fmt.Printf("remocal-agent serving TLS on %s\n", tlsAddr)
	}
	log.Info("agent serving", "listen", addr, "tls", tlsAddr, "targetPid", proc.PID())
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
