package server_test

import (
	"bufio"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/poll"
)

// TestRejoinedProgramSubscribesOnce: a program that listens in a session,
// exits, and is started again in the same session (what a debugger's
// restart does) holds the target's port once. The exited program's
// subscription ends with it; kept, it would deliver every request to the
// new listener a second time.
func TestRejoinedProgramSubscribesOnce(t *testing.T) {
	env := envtest.New(t)
	d := startDaemon(t, daemonOpts{})
	c := connect(t, d.socket, daemonclient.Options{Name: "rejoin"})
	probe := gobuild.Program(t, gobuild.Probe, gobuild.Options{Static: true})
	res := startSession(t, c, daemon.SessionStartParams{Target: fmt.Sprintf("pid/%d", env.App.PID), WorkspaceFolder: project(t, "")})
	join := func() *exec.Cmd {
		cmd := exec.Command(binary(t, testVersion), "exec", "--join", res.Env["REMOCAL_SESSION_SOCKET"], "--", probe, "listen=:8080", "wait")
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
		// "listening" comes once listen(2) returned: after the subscription.
		sc := bufio.NewScanner(out)
		for sc.Scan() && !strings.Contains(sc.Text(), "listening") {
		}
		return cmd
	}
	subscribed := func(want int) {
		t.Helper()
		var got []daemon.Subscription
		err := poll.Until(t.Context(), 20*time.Second, func() error {
			var detail daemon.SessionDetail
			if err := c.Call(testCtx(t), daemon.MethodSessionDetail, daemon.SessionParams{ID: res.Session.ID}, &detail); err != nil {
				return err
			}
			got = detail.Subscriptions
			if len(got) != want {
				return fmt.Errorf("%d subscriptions", len(got))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("want %d subscription(s) of the session, got %+v: %v", want, got, err)
		}
	}
	first := join()
	subscribed(1)
	first.Process.Kill()
	first.Wait()
	subscribed(0)
	join()
	subscribed(1)
}
