package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/user"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/remocal/remocal/interpose/session"
	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/protocol/config"
)

func newExecCmd() *cobra.Command {
	var (
		target, configFile, agentAddr string
		agentSecretFile               string
		agentInsecure                 bool
		steal, mirror, noIncoming     bool
		transparentFirst              bool
		logLevel                      string
		join                          string
		kf                            kubeFlags
		operatorMode, onConflict      string
		transport                     string
	)
	cmd := &cobra.Command{
		Use:   "exec [--target T] [-f CONFIG] [--steal] -- CMD [ARGS...]",
		Short: "Run a program as if it ran inside the target",
		Long: `Runs CMD so that it sees the target's environment variables, reads the target's
files (paths remote by configuration), resolves names with the target's DNS, connects
out through the target's network and receives its incoming traffic: mirrored by default,
stolen with --steal. Works for dynamically and statically linked programs and their
children. The exit status is CMD's.

Configuration comes from .remocal/config.json (found from the working directory upward)
or -f FILE; flags override it. See docs/exec.md.

With --join SOCKET, CMD joins a session that already runs (one the daemon started for
an IDE) instead of starting one: that session's settings apply.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if join != "" {
				for _, name := range []string{"target", "config", "agent", "steal", "mirror", "no-incoming", "kubeconfig", "context", "namespace", "agent-secret-file", "agent-insecure", "operator", "on-conflict", "transport"} {
					if cmd.Flags().Changed(name) {
						return fmt.Errorf("--join uses the session's settings; --%s cannot be combined with it", name)
					}
				}
				return runJoin(join, args)
			}
			if steal && mirror {
				return errors.New("--steal and --mirror contradict each other; pick one")
			}
			cfg, file, err := loadConfig(configFile)
			if err != nil {
				return err
			}
			if err := checkFileConfig(cfg, file, agentAddr, kf.Kubeconfig); err != nil {
				return err
			}
			over := session.Overrides{Target: target, AgentAddress: agentAddr, AgentSecretFile: agentSecretFile, AgentInsecure: agentInsecure, Kubernetes: kf.Kubernetes}
			if operatorMode != "" {
				if over.Operator, err = config.ParseOperatorMode(operatorMode); err != nil {
					return fmt.Errorf("--operator %v", err)
				}
			}
			if transport != "" {
				if over.Kubernetes.Transport, err = config.ParseTransport(transport); err != nil {
					return fmt.Errorf("--transport %v", err)
				}
			}
			if onConflict != "" {
				if over.OnConflict = config.OnConflict(onConflict); !over.OnConflict.Valid() {
					return fmt.Errorf(`--on-conflict: got %q, expected one of "abort", "continue", "override"`, onConflict)
				}
			}
			switch {
			case steal:
				over.Incoming = config.IncomingSteal
			case mirror:
				over.Incoming = config.IncomingMirror
			case noIncoming:
				over.Incoming = config.IncomingOff
			}
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			wd, _ := os.Getwd()
			sess, _, err := session.Open(cmd.Context(), session.OpenOptions{
				Options: session.Options{Config: cfg, ClientName: clientName(), Version: version, WorkDir: wd,
					TransparentFirst: transparentFirst, Stderr: os.Stderr, Logger: log,
					OnEvent: restartHint(os.Stderr, os.Args)},
				Overrides: over, Cluster: kube.NewConnector,
			})
			if err != nil {
				return err
			}
			if notice := sess.KeptLocalNotice(); notice != "" {
				fmt.Fprintf(os.Stderr, "remocal: %s\n", notice)
			}
			for _, sp := range sess.QueueSplits() {
				fmt.Fprintf(os.Stderr, "remocal: queue %s split for this session (%s)\n", sp.ID, envList(sp.Env))
			}
			code, err := sess.Run(context.WithoutCancel(cmd.Context()), args,
				session.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
			sess.Close()
			if err != nil {
				if errors.Is(err, session.ErrNotFound) {
					return exitError{code: 127, err: err}
				}
				return err
			}
			if code != 0 {
				return exitError{code: code, silent: true}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&target, "target", "t", "", "target to run in: deployment/NAME, pod/NAME[/container/C], service/NAME, ..., targetless, or pid/PID")
	f.StringVarP(&configFile, "config", "f", "", "configuration file (default: .remocal/config.json from the working directory upward)")
	f.StringVar(&agentAddr, "agent", "", "use a running agent at unix:PATH or tcp:HOST:PORT")
	f.StringVar(&agentSecretFile, "agent-secret-file", "", "the key of the agent at --agent (the file it was started with, --secret-file); needed for tcp:")
	f.BoolVar(&agentInsecure, "agent-insecure", false, "accept an agent at tcp: that proves no key (anyone who can reach its port could be answering)")
	f.BoolVar(&steal, "steal", false, "take the target's incoming traffic instead of mirroring it")
	f.BoolVar(&mirror, "mirror", false, "receive a copy of the target's incoming traffic (the default)")
	f.BoolVar(&noIncoming, "no-incoming", false, "leave the target's incoming traffic alone")
	f.BoolVar(&transparentFirst, "transparent-first", false, "do not intercept CMD itself, only the programs it starts (for debuggers such as dlv that launch the program)")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	kf.register(f)
	f.StringVar(&operatorMode, "operator", "", `reach Kubernetes targets through the cluster's remocal operator: auto (if it has one), true (only through it) or false (default: the configuration's "operator", else auto)`)
	f.StringVar(&transport, "transport", "", `how to reach an agent remocal starts in Kubernetes: auto (directly over the pod network when it is reachable from here, else through a port-forward), direct or port-forward (default: the configuration's kubernetes.transport, else auto)`)
	f.StringVar(&onConflict, "on-conflict", "", `when another session holds a port: abort (the default), continue without it, or override (take it; operator and RBAC permitting)`)
	f.StringVar(&join, "join", "", "join the running session serving this socket instead of starting one (how IDEs run static programs and debuggers)")
	return cmd
}

// loadConfig reads -f FILE, or the nearest .remocal/config.json, or
// returns an empty configuration when there is none; path is the file read.
func loadConfig(file string) (cfg *config.Config, path string, err error) {
	if file == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, "", err
		}
		file, err = config.Find(wd)
		if errors.Is(err, config.ErrNotFound) {
			return &config.Config{}, "", nil
		}
		if err != nil {
			return nil, "", err
		}
	}
	cfg, err = config.Load(file)
	return cfg, file, err
}

// checkFileConfig refuses what a configuration file cannot choose on its
// own (config.CheckFile), unless the command line replaces it: what the
// flags set is the user's choice, and the file's value is not used.
func checkFileConfig(cfg *config.Config, file, agentFlag, kubeconfigFlag string) error {
	if file == "" {
		return nil
	}
	fc := *cfg
	if agentFlag != "" {
		fc.Agent.Address = ""
	}
	if kubeconfigFlag != "" {
		fc.Kubernetes.Kubeconfig = ""
	}
	return fc.CheckFile(file)
}

// clientNameEnv overrides how other users see this user's sessions.
const clientNameEnv = "REMOCAL_CLIENT_NAME"

// clientName is how other users see this session: $REMOCAL_CLIENT_NAME,
// else user@host.
func clientName() string {
	if name := os.Getenv(clientNameEnv); name != "" {
		return name
	}
	name := "someone"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s", name, host)
}

// envList renders a split's variables in a stable order.
func envList(env map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		parts = append(parts, k+"="+env[k])
	}
	return strings.Join(parts, " ")
}
