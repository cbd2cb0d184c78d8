package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/interpose/session"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/syncbuf"
)

// movingTarget is a connector whose first connection reaches one real
// process's agent and whose reconnection reaches another's: what a
// Kubernetes session does when its target's pod is replaced.
type movingTarget struct {
	first, next *connect.LocalPID
}

func (m *movingTarget) Describe() string { return m.first.Describe() }

func (m *movingTarget) Connect(ctx context.Context, opts agentclient.Options) (*agentclient.Client, func(), error) {
	return m.first.Connect(ctx, opts)
}

func (m *movingTarget) Redial(ctx context.Context, opts agentclient.Options, _ time.Duration) (*agentclient.Client, func(), error) {
	return m.next.Connect(ctx, opts)
}

// TestSessionSaysWhatProgramsKeepAfterMoving: after the session follows
// its target to another process, the user is told that running programs
// keep the old one's environment and hostname, and the event says so as
// data for the daemon.
func TestSessionSaysWhatProgramsKeepAfterMoving(t *testing.T) {
	env := envtest.New(t)
	self := built(t, "remocal")
	var stderr syncbuf.Buffer
	events := make(chan session.Event, 16)
	sess, err := session.Start(t.Context(), session.Options{
		Connector: &movingTarget{
			first: &connect.LocalPID{PID: env.App.PID, Self: self, Stderr: &stderr},
			next:  &connect.LocalPID{PID: env.Redis.PID, Self: self, Stderr: &stderr},
		},
		Config: &config.Config{}, ClientName: "test", Self: self, WorkDir: t.TempDir(), Stderr: &stderr,
		OnEvent: func(ev session.Event) {
			select {
			case events <- ev:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	sess.Client().Close() // the connection drops; the session reconnects to the next process
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Kind != daemon.EventTargetMoved {
				continue
			}
			mustContain(t, "message", ev.Message, "keep the old one's environment variables and hostname ("+env.App.Hostname+")",
				"restart them")
			if got := strings.Join(sess.Kept(), ","); got != "env,hostname" {
				t.Errorf("Kept() = %q, want env,hostname", got)
			}
			mustContain(t, "stderr", stderr.String(), "remocal: the target is now pid/")
			return
		case <-timeout:
			t.Fatalf("no %s event; stderr:\n%s", daemon.EventTargetMoved, stderr.String())
		}
	}
}
