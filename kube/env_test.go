package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kubeconfig = `apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
- name: p
  cluster: {server: "https://10.0.0.1:6443"}
users:
- name: u
  user: {token: "t"}
contexts:
- name: dev
  context: {cluster: c, user: u, namespace: shop}
- name: prod
  context: {cluster: p, user: u}
`

// Load reads credentials like kubectl; nothing here reaches a cluster.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", dir) // no ~/.kube/config
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, tc := range []struct {
		name                 string
		env                  string // $KUBECONFIG
		flags                Flags
		host, namespace, ctx string
		errHas               string
	}{
		{name: "current context", flags: Flags{Kubeconfig: path}, host: "https://127.0.0.1:6443", namespace: "shop", ctx: "dev"},
		{name: "from KUBECONFIG", env: path, host: "https://127.0.0.1:6443", namespace: "shop", ctx: "dev"},
		{name: "KUBECONFIG list with a missing file", env: filepath.Join(dir, "nope") + ":" + path, host: "https://127.0.0.1:6443", namespace: "shop", ctx: "dev"},
		{name: "other context: its namespace or default", flags: Flags{Kubeconfig: path, Context: "prod"}, host: "https://10.0.0.1:6443", namespace: "default", ctx: "prod"},
		{name: "namespace flag", flags: Flags{Kubeconfig: path, Namespace: "ops"}, host: "https://127.0.0.1:6443", namespace: "ops", ctx: "dev"},
		{name: "unknown context", flags: Flags{Kubeconfig: path, Context: "staging"}, errHas: `load Kubernetes credentials (kubeconfig "` + path + `", context "staging")`},
		{name: "missing kubeconfig flag", flags: Flags{Kubeconfig: filepath.Join(dir, "nope")}, errHas: "load Kubernetes credentials"},
		{name: "nothing anywhere", env: filepath.Join(dir, "nope"), errHas: "no Kubernetes credentials found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			env, err := Load(tc.flags)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("Load = %v, want an error containing %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if env.Config.Host != tc.host || env.Namespace != tc.namespace || env.Context != tc.ctx || env.Config.UserAgent != "remocal" || env.Client == nil {
				t.Errorf("Load = host %q namespace %q context %q agent %q; want %q %q %q", env.Config.Host, env.Namespace, env.Context,
					env.Config.UserAgent, tc.host, tc.namespace, tc.ctx)
			}
		})
	}
}
