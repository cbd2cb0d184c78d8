package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/protocol/operator"
)

// sessionsFlags select the cluster and namespaces of operator sessions.
type sessionsFlags struct {
	kf            kubeFlags
	allNamespaces bool
}

func (f *sessionsFlags) register(cmd *cobra.Command) {
	f.kf.register(cmd.Flags())
	cmd.Flags().BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "sessions of every namespace")
}

// client loads the kubeconfig and returns the operator's client and the
// namespace to use ("" for all).
func (f *sessionsFlags) client() (*kube.OperatorClient, string, error) {
	if f.allNamespaces && f.kf.Namespace != "" {
		return nil, "", errors.New("-A and -n contradict each other; pick one")
	}
	env, err := kube.Load(f.kf.Kubernetes)
	if err != nil {
		return nil, "", err
	}
	c, err := kube.NewOperatorClient(env)
	if err != nil {
		return nil, "", err
	}
	ns := env.Namespace
	if f.allNamespaces {
		ns = ""
	}
	return c, ns, nil
}

func newSessionsCmd() *cobra.Command {
	var (
		sf             sessionsFlags
		output, socket string
		local          bool
	)
	list := func(cmd *cobra.Command, _ []string) error {
		if local || socket != "" {
			return listDaemonSessions(cmd, socket, output)
		}
		if output != "table" && output != "json" {
			return fmt.Errorf("-o %q: use table or json", output)
		}
		c, ns, err := sf.client()
		if err != nil {
			return err
		}
		res, err := c.ListSessions(cmd.Context(), ns)
		if err != nil {
			return err
		}
		if output == "json" {
			b, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
			return err
		}
		return writeSessionTable(cmd.OutOrStdout(), res.Items, ns == "", time.Now())
	}
	cmd := &cobra.Command{
		Use:   "sessions [list] [-n NS | -A] [-o table|json]",
		Short: "List the operator's sessions in the cluster (or, with --daemon, this machine's daemon's)",
		Long: `Lists the sessions of the cluster's remocal operator: whose they are, on which target,
the ports they receive (mirror or steal, with filters) and the ports they hold (locks).
RBAC decides what you see. "remocal sessions kill" ends sessions.

With --daemon (or --socket), lists the sessions of this machine's remocal daemon instead.`,
		Args: cobra.NoArgs,
		RunE: list,
	}
	listCmd := &cobra.Command{Use: "list [-n NS | -A] [-o table|json]", Short: "List the operator's sessions", Args: cobra.NoArgs, RunE: list}
	for _, c := range []*cobra.Command{cmd, listCmd} {
		c.Flags().StringVarP(&output, "output", "o", "table", "table or json")
		c.Flags().BoolVar(&local, "daemon", false, "list this machine's daemon's sessions instead of the operator's")
		c.Flags().StringVar(&socket, "socket", "", "unix socket of the daemon (implies --daemon)")
		sf.register(c)
	}
	cmd.AddCommand(listCmd, newSessionsKillCmd())
	return cmd
}

func newSessionsKillCmd() *cobra.Command {
	var (
		sf       sessionsFlags
		all      bool
		allUsers bool
	)
	cmd := &cobra.Command{
		Use:   "kill (NAME... | --all [--all-users]) [-n NS | -A]",
		Short: "End operator sessions: named ones, or all of yours",
		Long: `Ends sessions of the cluster's remocal operator: their ports go back to the target's
application and their clients are told. You may end your own; ending other users'
sessions (--all-users, or naming one) needs the remocal-admin ClusterRole.`,
		RunE: func(cmd *cobra.Command, names []string) error {
			switch {
			case all && len(names) > 0:
				return errors.New("--all ends every one of your sessions; name sessions or pass --all, not both")
			case !all && len(names) == 0:
				return errors.New("name the sessions to end (remocal sessions lists them), or pass --all")
			case allUsers && !all:
				return errors.New("--all-users goes with --all")
			case sf.allNamespaces && len(names) > 0:
				return errors.New("-A goes with --all; a named session is looked up in -n NAMESPACE")
			}
			c, ns, err := sf.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			targets, err := killTargets(ctx, c, ns, names, all, allUsers)
			if err != nil {
				return err
			}
			return killSessions(ctx, cmd.OutOrStdout(), c, targets)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "end all your sessions (of the namespace, or every namespace with -A)")
	cmd.Flags().BoolVar(&allUsers, "all-users", false, "with --all: everybody's sessions, not only yours (needs remocal-admin)")
	sf.register(cmd)
	return cmd
}

type sessionRef struct{ namespace, name string }

// killTargets resolves what to end: the named sessions, or with all the
// user's own (everybody's with allUsers) as listed now.
func killTargets(ctx context.Context, c *kube.OperatorClient, ns string, names []string, all, allUsers bool) ([]sessionRef, error) {
	if !all {
		out := make([]sessionRef, len(names))
		for i, n := range names {
			out[i] = sessionRef{ns, n}
		}
		return out, nil
	}
	me := ""
	if !allUsers {
		var err error
		if me, err = c.Whoami(ctx); err != nil {
			return nil, err
		}
	}
	list, err := c.ListSessions(ctx, ns)
	if err != nil {
		return nil, err
	}
	var out []sessionRef
	for _, s := range list.Items {
		if allUsers || s.Spec.User.Username == me {
			out = append(out, sessionRef{s.Namespace, s.Name})
		}
	}
	return out, nil
}

// killSessions deletes each session and reports each refusal; the error
// says how many could not be ended.
func killSessions(ctx context.Context, w io.Writer, c *kube.OperatorClient, refs []sessionRef) error {
	if len(refs) == 0 {
		fmt.Fprintln(w, "no sessions to end")
		return nil
	}
	var failed []error
	for _, r := range refs {
		if err := c.DeleteSession(ctx, r.namespace, r.name); err != nil {
			failed = append(failed, err)
			continue
		}
		fmt.Fprintf(w, "session %s/%s ended\n", r.namespace, r.name)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d sessions were not ended: %w", len(failed), len(refs), errors.Join(failed...))
	}
	return nil
}

// writeSessionTable prints sessions as `remocal sessions` shows them.
func writeSessionTable(w io.Writer, sessions []operator.Session, withNamespace bool, now time.Time) error {
	sessions = slices.Clone(sessions)
	sort.Slice(sessions, func(i, j int) bool {
		a, b := sessions[i], sessions[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "NAME\tUSER\tTARGET\tPORTS/LOCKS\tSINCE\tPHASE"
	if withNamespace {
		head = "NAMESPACE\t" + head
	}
	fmt.Fprintln(tw, head)
	if len(sessions) == 0 {
		tw.Flush()
		_, err := fmt.Fprintln(w, "(no sessions)")
		return err
	}
	for _, s := range sessions {
		row := []string{s.Name, s.Spec.User.Username, targetRef(s.Spec.Target), portsCell(s.Status.Ports, s.Status.QueueSplits),
			since(s.Status.StartTime.Time, now), phaseCell(s.Status, now)}
		if withNamespace {
			row = append([]string{s.Namespace}, row...)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// targetRef spells an operator target name ("deployment.api") the way
// remocal's flags do ("deployment/api").
func targetRef(name string) string {
	kind, rest, ok := strings.Cut(name, ".")
	if !ok {
		return name
	}
	return kind + "/" + rest
}

// portsCell is "8080 steal (lock) header X-User="bob", 9090 mirror", and
// the queues the session splits: "queue orders-worker/orders steal header
// tenant="a" (412 delivered)".
func portsCell(ports []operator.PortStatus, queues []operator.QueueSplitStatus) string {
	if len(ports)+len(queues) == 0 {
		return "-"
	}
	parts := make([]string, len(ports), len(ports)+len(queues))
	for _, q := range queues {
		s := fmt.Sprintf("queue %s/%s %s", q.Consumer, q.Queue, q.Mode)
		if q.Filter != nil {
			s += " " + q.Filter.String()
		}
		parts = append(parts, fmt.Sprintf("%s (%d delivered)", s, q.Delivered))
	}
	for i, p := range ports {
		s := fmt.Sprintf("%d %s", p.Port, p.Mode)
		if p.Lock {
			s += " (lock)"
		}
		if p.Filter != nil {
			s += " " + p.Filter.String()
		}
		parts[i] = s
	}
	return strings.Join(parts, ", ")
}

func since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t)) + " ago"
}

// phaseCell adds, for a disconnected session, how long its locks stay.
func phaseCell(st operator.SessionStatus, now time.Time) string {
	if st.Phase == operator.PhaseDisconnected && st.ExpiresAt != nil {
		return fmt.Sprintf("%s (expires in %s)", st.Phase, duration.HumanDuration(st.ExpiresAt.Sub(now)))
	}
	if st.Phase == "" {
		return "-"
	}
	return st.Phase
}
