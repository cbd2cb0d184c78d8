package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/procwatch"
)

// startDaemon runs `remocal daemon` on a socket of its own and connects a
// client to it.
func startDaemon(t *testing.T, env []string, args ...string) (*procwatch.Proc, *daemonclient.Client) {
	t.Helper()
	dir, err := os.MkdirTemp("", "rmcd") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "d.sock")
	cmd := exec.Command(remocal(t), append([]string{"daemon", "--socket", socket, "--idle-timeout", "0", "--log-level", "debug"}, args...)...)
	cmd.Env = env
	p := procwatch.Start(t, cmd)
	p.Expect(p.Stderr, "daemon listening")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := daemonclient.Dial(ctx, socket, daemonclient.Options{Name: "test", Folders: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c
}

func TestDaemonWithoutKubeconfig(t *testing.T) {
	p, c := startDaemon(t, cleanEnv(t))
	// Said before the daemon listens, so already read.
	if !slices.ContainsFunc(p.Lines(), func(l string) bool {
		return strings.Contains(l, "no Kubernetes targets: no usable kubeconfig; serving local targets only")
	}) {
		t.Error("the daemon does not say it has no Kubernetes targets")
	}
	var res daemon.NamespacesResult
	if err := c.Call(t.Context(), daemon.MethodNamespaces, nil, &res); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Namespaces, []daemon.Namespace{{Name: "local", Provider: "local"}}) {
		t.Errorf("namespaces = %+v", res.Namespaces)
	}
	// A kubeconfig asked for by flag must load.
	r := runRemocal(t, t.TempDir(), cleanEnv(t), "daemon", "--socket", filepath.Join(t.TempDir(), "s"), "--kubeconfig", "/nonexistent/kubeconfig")
	if r.Code == 0 || !strings.Contains(r.Stderr, "/nonexistent/kubeconfig") {
		t.Errorf("a missing --kubeconfig: exit %d, %s", r.Code, r.Stderr)
	}
}

// The daemon lists the cluster's targets through remocal/targets and
// tells its clients when they change; a session's namespace reaches the
// session.
func TestDaemonKubernetesTargets(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	ctx := t.Context()
	_, client := startDaemon(t, cleanEnv(t), "--kubeconfig", c.Kubeconfig)

	if err := c.Apply(ctx, strings.ReplaceAll(`
apiVersion: apps/v1
kind: Deployment
metadata: {namespace: NS, name: api}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: api, image: `+cluster.ToolboxImage+`, imagePullPolicy: Never, args: [serve]}]
`, "NS", ns)); err != nil {
		t.Fatal(err)
	}
	// Each notification about the namespace (or about all of them, the
	// provider's first listing) is followed by a listing, until the
	// Deployment is there and ready.
	deadline := time.NewTimer(90 * time.Second)
	defer deadline.Stop()
	notified := 0
	var last []daemon.Target
	for {
		var res daemon.TargetsResult
		if err := client.Call(ctx, daemon.MethodTargets, daemon.TargetsParams{Namespace: ns, Kinds: []string{"deployment"}}, &res); err != nil {
			t.Fatal(err)
		}
		last = res.Targets
		if notified > 0 && len(last) == 1 && last[0].Ref == "deployment/api" && last[0].Ready && last[0].Status == "1/1 ready" &&
			last[0].Provider == "kubernetes" && slices.Equal(last[0].Containers, []string{"api"}) {
			break
		}
		select {
		case n := <-client.Notifications():
			if n.Method != daemon.NotifyTargetsChanged {
				continue
			}
			var ch daemon.TargetsChanged
			if err := json.Unmarshal(n.Params, &ch); err != nil {
				t.Fatal(err)
			}
			if ch.Provider == "kubernetes" && (ch.Namespace == ns || ch.Namespace == "") {
				notified++
			}
		case <-deadline.C:
			t.Fatalf("no ready deployment/api after %d notifications; last listing %+v", notified, last)
		}
	}
	var nss daemon.NamespacesResult
	if err := client.Call(ctx, daemon.MethodNamespaces, nil, &nss); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(nss.Namespaces, daemon.Namespace{Name: ns, Provider: "kubernetes"}) ||
		!slices.Contains(nss.Namespaces, daemon.Namespace{Name: "local", Provider: "local"}) {
		t.Errorf("namespaces %+v lack %s or local", nss.Namespaces, ns)
	}

	// A session's namespace is what the session uses: resolving a
	// Deployment that does not exist there fails naming it, and the
	// session, ended, shows it.
	folder := t.TempDir()
	os.MkdirAll(filepath.Join(folder, ".remocal"), 0o755)
	if err := os.WriteFile(filepath.Join(folder, ".remocal", "config.json"),
		[]byte(`{"kubernetes": {"kubeconfig": "`+c.Kubeconfig+`"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	err := client.Call(ctx, daemon.MethodSessionStart, daemon.SessionStartParams{Target: "deployment/nope", Namespace: ns, WorkspaceFolder: folder}, nil)
	if err == nil || !strings.Contains(err.Error(), `"nope" not found in namespace `+ns) {
		t.Errorf("session start in %s: %v", ns, err)
	}
	for {
		var ch daemon.SessionChanged
		select {
		case n := <-client.Notifications():
			if n.Method != daemon.NotifySessionChanged {
				continue
			}
			if err := json.Unmarshal(n.Params, &ch); err != nil {
				t.Fatal(err)
			}
		case <-deadline.C:
			t.Fatal("no sessionChanged for the failed session")
		}
		if ch.Session.Namespace != ns || ch.Session.Target != "deployment/nope" {
			t.Errorf("session %+v: want namespace %s", ch.Session, ns)
		}
		if ch.Session.State == daemon.StateEnded {
			break
		}
	}
	err = client.Call(ctx, daemon.MethodSessionStart, daemon.SessionStartParams{Target: "deployment/api", Namespace: "Not_A_Namespace", WorkspaceFolder: folder}, nil)
	if err == nil || !strings.Contains(err.Error(), `"Not_A_Namespace", a namespace name`) {
		t.Errorf("a malformed namespace: %v", err)
	}
}
