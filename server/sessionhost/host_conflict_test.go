package sessionhost

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
)

// With onConflict abort (the default) a held port ends the session: the
// host exits, and its last words, which the daemon shows, name the holder.
func TestConflictAbortEndsTheSession(t *testing.T) {
	env := envtest.New(t)
	addr, _ := agentWithStolenAppPort(t, env, "bob@desk")

	spec := appSpec(t, env, "s1")
	spec.Config.Agent.Address = addr
	spec.Incoming = "steal"
	h := startHost(t, spec)
	p := start(t, programEnv(h.Ready()), joinArgv(t, h.spec.Socket, nil, built(t, "probe"), "listen=:8080", "wait")...)
	ev := h.events.wait(t, daemon.EventConflict)
	mustContain(t, "conflict message", ev.Message, "bob@desk", "ending the session")
	select {
	case <-h.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the session host still runs 30s after an aborting conflict")
	}
	if err := h.Err(); err == nil || !strings.Contains(err.Error(), "held by another session") || !strings.Contains(err.Error(), "bob@desk") {
		t.Errorf("host ended with %v; want its last words to name the holder", err)
	}
	p.Stdin.Close()
	p.Wait()
}

// agentWithStolenAppPort starts an agent on env's app and has another
// client, named holder, steal the app's port on it without a filter, for
// as long as the test runs; it returns the agent's address and the
// holder's subscription.
func agentWithStolenAppPort(t *testing.T, env *localenv.Env, holder string) (addr, subscription string) {
	t.Helper()
	addr, _ = startAgent(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := agentclient.Dial(ctx, addr, agentclient.Options{Name: holder})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sub, err := c.Subscribe(ctx, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal},
		agentclient.HandlerFunc(func(_ context.Context, in *agentclient.Incoming) { in.Stream.Close() }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close(context.Background()) })
	return addr, sub.ID()
}
