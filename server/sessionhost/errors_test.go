package sessionhost

import (
	"errors"
	"fmt"
	"testing"

	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/interpose/session"
	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
)

// Each category is found by its type, whatever the message says: every
// case's message would have been put in another category by the words
// the daemon once searched for ("config", "no such process", "does not
// exist", "seccomp").
func TestStartErrorCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"a kubeconfig that does not load is the agent's, not the configuration's",
			errors.New(`load kubeconfig /home/u/.kube/config: open /home/u/.kube/config: no such file or directory`), daemon.CodeAgent},
		{"an unreachable agent whose socket path mentions config",
			fmt.Errorf("cannot reach the agent at unix:/srv/config/agent.sock: %w", errors.New("connection refused")), daemon.CodeAgent},
		{"a Kubernetes target named config-api that does not exist",
			connect.TargetNotFound(errors.New(`deployment "config-api" not found in namespace shop`)), daemon.CodeTargetNotFound},
		{"a target not found, wrapped on the way up",
			fmt.Errorf("session: %w", connect.TargetNotFound(errors.New("pod x is Pending (seccomp profile missing)"))), daemon.CodeTargetNotFound},
		{"an invalid configuration whose problem reads like a missing process",
			&config.Error{Problems: []config.Problem{{Path: "$.target", Message: `got "pid/0", no such process id`}}}, daemon.CodeInvalidConfig},
		{"a kernel without seccomp features, whatever the text",
			fmt.Errorf("%w: %w", session.ErrUnsupported, errors.New("config option CONFIG_SECCOMP_FILTER is off")), daemon.CodeUnsupported},
		{"a refused target, whose message reads like a missing one",
			fmt.Errorf("%w: pod kube-system/coredns-x does not exist as a target remocal serves", kube.ErrTargetRefused), daemon.CodeTargetRefused},
		{"an agent refusal mentioning a process that does not exist",
			errors.New("agent: target process does not exist any more (no such process)"), daemon.CodeAgent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := startErrorCode(tc.err); got != tc.want {
				t.Errorf("startErrorCode(%q) = %s, want %s", tc.err, daemon.Reason(got), daemon.Reason(tc.want))
			}
		})
	}
}

// TargetNotFound keeps the message it marks.
func TestTargetNotFoundKeepsMessage(t *testing.T) {
	inner := errors.New(`service "web" not found in namespace shop`)
	err := connect.TargetNotFound(inner)
	if err.Error() != inner.Error() || !errors.Is(err, inner) || !errors.Is(err, connect.ErrTargetNotFound) {
		t.Errorf("TargetNotFound(%q) = %q; Is(inner) %v, Is(ErrTargetNotFound) %v", inner, err,
			errors.Is(err, inner), errors.Is(err, connect.ErrTargetNotFound))
	}
}
