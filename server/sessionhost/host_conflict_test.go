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
	addr, _ := startAgent(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bob, err := agentclient.Dial(ctx, addr, agentclient.Options{Name: "bob@desk"})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	sub, err := bob.Subscribe(ctx, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal},
		agentclient.HandlerFunc(func(_ context.Context, in *agentclient.Incoming) { in.Stream.Close() }))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())

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
