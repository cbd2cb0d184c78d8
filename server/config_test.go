package server_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
)

func writeConfig(t *testing.T, folder, content string) string {
	t.Helper()
	dir := filepath.Join(folder, ".remocal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigResolveAndVerify(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	c := connect(t, d.socket, daemonclient.Options{})
	ctx := testCtx(t)

	empty := t.TempDir()
	var res daemon.ConfigResult
	if err := c.Call(ctx, daemon.MethodConfigResolve, daemon.ConfigParams{WorkspaceFolder: empty}, &res); err != nil {
		t.Fatal(err)
	}
	if res.File != "" || !res.Valid || len(res.Problems) != 0 {
		t.Errorf("no config: %+v", res)
	}

	folder := t.TempDir()
	file := writeConfig(t, folder, `{
  // comments are fine
  "target": "pid/1",
  "network": {"incoming": {"mode": "steal"}},
}`)
	sub := filepath.Join(folder, "cmd", "api")
	os.MkdirAll(sub, 0o755)
	res = daemon.ConfigResult{}
	if err := c.Call(ctx, daemon.MethodConfigResolve, daemon.ConfigParams{WorkspaceFolder: "file://" + sub}, &res); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(res.Config)
	if res.File != file || !res.Valid || string(cfg) == "null" {
		t.Fatalf("resolve from a subdirectory: %+v", res)
	}
	var decoded struct {
		Target  string `json:"target"`
		Network struct {
			Incoming struct{ Mode string } `json:"incoming"`
			Outgoing struct{ TCP bool }    `json:"outgoing"`
		} `json:"network"`
	}
	json.Unmarshal(cfg, &decoded)
	if decoded.Target != "pid/1" || decoded.Network.Incoming.Mode != "steal" || !decoded.Network.Outgoing.TCP {
		t.Errorf("resolved config lacks values or defaults: %s", cfg)
	}

	writeConfig(t, folder, "{\n  \"network\": {\"incoming\": {\"mode\": \"copy\"}},\n  \"fs\": {\"mdoe\": 1}\n}\n")
	res = daemon.ConfigResult{}
	if err := c.Call(ctx, daemon.MethodConfigVerify, daemon.ConfigParams{File: file}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Valid || len(res.Problems) != 2 || res.Config != nil {
		t.Fatalf("verify bad config: %+v", res)
	}
	p := res.Problems[0]
	if p.Path != "$.network.incoming.mode" || p.Line != 2 || p.Column == 0 {
		t.Errorf("problem = %+v; want path, line and column", p)
	}
}

func TestConfigChangeNotification(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	folder := t.TempDir()
	c := connect(t, d.socket, daemonclient.Options{Folders: []string{folder}})
	other := connect(t, d.socket, daemonclient.Options{Folders: []string{t.TempDir()}})

	// .remocal does not exist yet: creating it and the file is noticed.
	writeConfig(t, folder, `{"fs": {"mode": "sideways"}}`)
	n := waitNotification(t, c, daemon.NotifyConfigChanged, func(n daemonclient.Notification) bool {
		var cc daemon.ConfigChanged
		json.Unmarshal(n.Params, &cc)
		return cc.WorkspaceFolder == folder && !cc.Valid && len(cc.Problems) > 0 && cc.Problems[0].Path == "$.fs.mode"
	})
	var cc daemon.ConfigChanged
	json.Unmarshal(n.Params, &cc)
	if len(cc.Problems) == 0 || cc.Problems[0].Path != "$.fs.mode" {
		t.Errorf("configChanged = %+v", cc)
	}
	writeConfig(t, folder, `{"fs": {"mode": "local"}}`)
	waitNotification(t, c, daemon.NotifyConfigChanged, func(n daemonclient.Notification) bool {
		var cc daemon.ConfigChanged
		json.Unmarshal(n.Params, &cc)
		return cc.Valid
	})
	// Notifications go to every client: the other client also heard.
	waitNotification(t, other, daemon.NotifyConfigChanged, func(n daemonclient.Notification) bool {
		var cc daemon.ConfigChanged
		json.Unmarshal(n.Params, &cc)
		return cc.WorkspaceFolder == folder
	})
}
