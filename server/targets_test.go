package server_test

import (
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/server/internal/targets"
	"github.com/remocal/remocal/test/poll"
)

func TestTargetsFromTheLocalProvider(t *testing.T) {
	local := targets.NewLocal(50 * time.Millisecond)
	d := startDaemon(t, daemonOpts{targets: targets.NewSet(local)})
	c := connect(t, d.socket, daemonclient.Options{})
	ctx := testCtx(t)

	var ns daemon.NamespacesResult
	if err := c.Call(ctx, daemon.MethodNamespaces, nil, &ns); err != nil || len(ns.Namespaces) != 1 || ns.Namespaces[0].Name != "local" {
		t.Fatalf("namespaces = %+v, %v", ns, err)
	}
	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	ref := fmt.Sprintf("pid/%d", sleeper.Process.Pid)
	// The provider rescans in the background and tells clients.
	waitNotification(t, c, daemon.NotifyTargetsChanged, nil)
	var listed daemon.Target
	if err := poll.Until(ctx, 10*time.Second, func() error {
		var res daemon.TargetsResult
		if err := c.Call(ctx, daemon.MethodTargets, daemon.TargetsParams{Kinds: []string{"pid"}, Namespace: "local"}, &res); err != nil {
			t.Fatal(err)
		}
		for _, tg := range res.Targets {
			if tg.Ref == ref {
				listed = tg
				return nil
			}
		}
		return fmt.Errorf("%s not among the %d targets listed", ref, len(res.Targets))
	}); err != nil {
		t.Fatal(err)
	}
	if listed.Name != "sleep" || listed.Description != "sleep 600" || !listed.Ready {
		t.Errorf("target = %+v", listed)
	}
	var none daemon.TargetsResult
	c.Call(ctx, daemon.MethodTargets, daemon.TargetsParams{Kinds: []string{"deployment"}}, &none)
	if none.Targets == nil || len(none.Targets) != 0 {
		t.Errorf("a kind nobody provides lists nothing (and not null): %+v", none)
	}
}
