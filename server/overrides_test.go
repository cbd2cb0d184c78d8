package server_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.lsp.dev/jsonrpc2"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/test/envtest"
)

// TestSessionOverridesAndLabel: what a launch configuration says about its
// own session (overrides) wins over the workspace's file, and the label
// shows in every client's list.
func TestSessionOverridesAndLabel(t *testing.T) {
	env := envtest.New(t)
	d := startDaemon(t, daemonOpts{})
	folder := project(t, `, "network": {"incoming": {"mode": "mirror"}}`)
	c := connect(t, d.socket, daemonclient.Options{Folders: []string{folder}})
	res := startSession(t, c, daemon.SessionStartParams{Target: fmt.Sprintf("pid/%d", env.App.PID), WorkspaceFolder: folder,
		Label: "debug: Launch API", Program: &daemon.Program{Path: python(t)},
		Overrides: map[string]any{"network": map[string]any{"incoming": map[string]any{"mode": "steal"}}, "env": map[string]any{"override": map[string]any{"EXTRA": "from-launch"}}}})
	t.Cleanup(func() { c.Call(testCtx(t), daemon.MethodSessionStop, daemon.SessionParams{ID: res.Session.ID}, nil) })
	if res.Session.Incoming != "steal" || res.Session.Label != "debug: Launch API" {
		t.Errorf("session = %+v, want incoming steal from the overrides and the label", res.Session)
	}
	if res.Env["EXTRA"] != "from-launch" {
		t.Errorf("env EXTRA = %q, want the overrides' env.override", res.Env["EXTRA"])
	}
	var list daemon.SessionListResult
	if err := c.Call(testCtx(t), daemon.MethodSessionList, nil, &list); err != nil || len(list.Sessions) != 1 || list.Sessions[0].Label != "debug: Launch API" {
		t.Errorf("list = %+v, %v", list, err)
	}
}

func TestSessionOverridesAreValidated(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	folder := project(t, "")
	c := connect(t, d.socket, daemonclient.Options{})
	for name, tc := range map[string]struct {
		overrides map[string]any
		path      string
	}{
		"bad value": {map[string]any{"network": map[string]any{"incoming": map[string]any{"mode": "copy"}}}, "$.network.incoming.mode"},
		// A repository's launch.json is no more trusted than its
		// .remocal/config.json: it cannot pick the agent.
		"untrusted agent": {map[string]any{"agent": map[string]any{"address": "tcp:127.0.0.1:1"}}, "$.agent.address"},
	} {
		t.Run(name, func(t *testing.T) {
			err := c.Call(testCtx(t), daemon.MethodSessionStart, daemon.SessionStartParams{Target: "pid/1", WorkspaceFolder: folder, Overrides: tc.overrides}, nil)
			var je *jsonrpc2.Error
			if !errors.As(err, &je) || je.Code != daemon.CodeInvalidConfig {
				t.Fatalf("start = %v, want invalid_config", err)
			}
			if !strings.Contains(string(je.Data), `"path":"`+tc.path+`"`) {
				t.Errorf("error data %s does not name %s", je.Data, tc.path)
			}
		})
	}
}

func TestSessionKillWithoutOperator(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	c := connect(t, d.socket, daemonclient.Options{})
	err := c.Call(testCtx(t), daemon.MethodSessionKill, daemon.RemoteSessionParams{Namespace: "shop", Name: "s-1"}, nil)
	var je *jsonrpc2.Error
	if !errors.As(err, &je) || je.Code != daemon.CodeNoOperator {
		t.Fatalf("kill = %v, want no_operator", err)
	}
	err = c.Call(testCtx(t), daemon.MethodSessionKill, daemon.RemoteSessionParams{}, nil)
	if !errors.As(err, &je) || je.Code != daemon.CodeInvalidParams {
		t.Fatalf("kill without a name = %v, want invalid_params", err)
	}
}
