package vscode_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/remocal/remocal/internal/localenv"
)

// Launch configurations of the test workspace; the suites start them by
// these names.
const (
	cfgNode        = "node app"
	cfgNodeSteal   = "node app (steal)"
	cfgFixtureDyn  = "fixture dynamic"
	cfgFixtureStat = "fixture static"
	// cfgNodeStealShared keeps running without the port when another
	// session holds it (onConflict "continue", through the launch
	// configuration's overrides), so the conflict stays to be seen.
	cfgNodeStealShared = "node app (steal, keep going)"
	// cfgNodeLocal opts out of remocal: the harness's own js-debug check.
	cfgNodeLocal = "node local"
	// cfgFixtureServer runs the node app under the fixture debug type,
	// whose adapter cannot restart a program itself: VS Code restarts its
	// debug session by ending it and launching it again.
	cfgFixtureServer = "fixture node app"
	// cfgSilentCluster targets a deployment of a cluster whose API server
	// never answers (silentAPI): its session start hangs until cancelled.
	cfgSilentCluster = "node app (silent cluster)"
)

// makeWorkspace writes the workspace VS Code opens: the node app, a
// .remocal/config.json whose target is the App pod (its config directory
// read from the target; only port 8080 subscribed, not the debugger's), the
// launch configurations and the remocal binary to use.
func makeWorkspace(t *testing.T, pkgDir string, env *localenv.Env, remocal, node, silentKubeconfig string, programs map[string]string) string {
	t.Helper()
	ws := filepath.Join(t.TempDir(), "inventory-ws")
	app, err := os.ReadFile(filepath.Join(pkgDir, "testdata", "node-app", "app.js"))
	if err != nil {
		t.Fatal(err)
	}
	nodeEnv := map[string]string{"APP_PORT": fmt.Sprint(localenv.AppPort)}
	files := map[string]any{
		"app.js": string(app),
		".remocal/config.json": map[string]any{
			"target": fmt.Sprintf("pid/%d", env.App.PID),
			"fs":     map[string]any{"remote": []string{"/etc/inventory"}},
			"network": map[string]any{"incoming": map[string]any{
				"mode": "mirror", "ports": []int{localenv.AppPort},
			}},
		},
		".vscode/settings.json": map[string]any{"remocal.binaryPath": remocal},
		".vscode/launch.json": map[string]any{
			"version": "0.2.0",
			"configurations": []map[string]any{
				{"type": "node", "request": "launch", "name": cfgNode, "program": "${workspaceFolder}/app.js", "env": nodeEnv},
				{"type": "node", "request": "launch", "name": cfgNodeSteal, "program": "${workspaceFolder}/app.js", "env": nodeEnv,
					"remocal": map[string]any{"incoming": "steal"}},
				{"type": "node", "request": "launch", "name": cfgNodeStealShared, "program": "${workspaceFolder}/app.js", "env": nodeEnv,
					"remocal": map[string]any{"incoming": "steal", "overrides": map[string]any{
						"network": map[string]any{"incoming": map[string]any{"onConflict": "continue"}},
					}}},
				{"type": "node", "request": "launch", "name": cfgNodeLocal, "program": "${workspaceFolder}/app.js",
					"env": map[string]string{"APP_PORT": "18080"}, "remocal": false},
				{"type": "node", "request": "launch", "name": cfgSilentCluster, "program": "${workspaceFolder}/app.js", "env": nodeEnv,
					"remocal": map[string]any{"target": "deployment/api", "namespace": "default", "overrides": map[string]any{
						"kubernetes": map[string]any{"kubeconfig": silentKubeconfig},
					}}},
				{"type": "remocal-fixture", "request": "launch", "name": cfgFixtureServer, "program": node,
					"args": []string{"${workspaceFolder}/app.js"}, "env": nodeEnv},
				{"type": "remocal-fixture", "request": "launch", "name": cfgFixtureDyn, "program": programs["dynamic"], "args": []string{"dynamic"}},
				{"type": "remocal-fixture", "request": "launch", "name": cfgFixtureStat, "program": programs["static"], "args": []string{"static"}},
			},
		},
	}
	for name, content := range files {
		p := filepath.Join(ws, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, ok := content.(string)
		if !ok {
			j, err := json.MarshalIndent(content, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			b = string(j) + "\n"
		}
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

// secondPort is the local port the second client's program listens on;
// its workspace maps it to the target's port (the debuggee has that one
// locally).
const secondPort = 9080

// makeSecondWorkspace is the workspace of the suites' second daemon client
// (a script): same target, stealing the target's port into secondPort.
func makeSecondWorkspace(t *testing.T, env *localenv.Env) string {
	t.Helper()
	ws := filepath.Join(t.TempDir(), "second-client")
	cfg := map[string]any{
		"target": fmt.Sprintf("pid/%d", env.App.PID),
		"network": map[string]any{"incoming": map[string]any{
			"mode": "steal", "ports": []int{secondPort},
			"portMapping": map[string]int{fmt.Sprint(secondPort): localenv.AppPort},
		}},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(ws, ".remocal"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, ".remocal", "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return ws
}
