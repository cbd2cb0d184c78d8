package kube

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// documentedRole is the ClusterRole of docs/kubernetes.md ("Permissions"),
// read from the document so that what users are told to grant is what
// the tests grant.
func documentedRole(t testing.TB) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(moduleRoot(t), "docs", "kubernetes.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: \\{name: remocal-user\\}.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/kubernetes.md has no ClusterRole remocal-user in a yaml block")
	}
	return string(m[1])
}

// documentedAccount creates the service account "dev" in the test's
// namespace, bound to the documented ClusterRole (changed by edit, if
// given) under a name of the test's own, and returns its token.
func (f *fixture) documentedAccount(name string, edit func(string) string) string {
	t := f.t
	t.Helper()
	role := name + "-" + f.ns // ClusterRoles are cluster-wide; tests run in parallel namespaces
	manifest := strings.Replace(documentedRole(t), "name: remocal-user}", "name: "+role+"}", 1)
	if edit != nil {
		manifest = edit(manifest)
	}
	if _, err := f.c.KubectlInput(f.ctx(), manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = f.c.Kubectl(context.Background(), "delete", "clusterrole", role, "--wait=false")
	})
	f.apply(fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: dev}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dev}
subjects: [{kind: ServiceAccount, name: dev}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %s}
`, role))
	return f.kubectl("create", "token", "dev")
}

// The cluster, user and namespace are chosen as kubectl chooses them: the
// --kubeconfig flag over $KUBECONFIG, --context over the current context,
// the context's namespace when there is no -n, and credentials from an exec
// plugin. The account has exactly the documented permissions.
func TestKubeconfigLikeKubectl(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)

	token := f.documentedAccount("remocal-user", nil)

	// The exec plugin prints the token and leaves a mark that it ran.
	dir := t.TempDir()
	mark := filepath.Join(dir, "plugin-ran")
	plugin := filepath.Join(dir, "credential-plugin")
	script := fmt.Sprintf("#!/bin/sh\necho ran >> %s\nprintf '%%s' '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%s\"}}'\n", mark, token)
	if err := os.WriteFile(plugin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// The current context names a namespace that does not exist: using it
	// instead of --context's would fail.
	p := f.c.TokenKubeconfig(t, "dev", "unused", f.ns)
	cfg, err := clientcmd.LoadFromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AuthInfos["dev"] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
		APIVersion: "client.authentication.k8s.io/v1", Command: plugin, InteractiveMode: clientcmdapi.NeverExecInteractiveMode}}
	cfg.Contexts["elsewhere"] = &clientcmdapi.Context{Cluster: cfg.Contexts["dev"].Cluster, AuthInfo: "dev", Namespace: "no-such-namespace"}
	cfg.CurrentContext = "elsewhere"
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	f.kubeconfig = filepath.Join(dir, "missing") // $KUBECONFIG loses to the flag

	r := f.run("exec", "--kubeconfig", p, "--context", "dev", "--target", "deploy/inventory", "--no-incoming", "--",
		f.probe(), "env=GREETING", "read=/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if r.Code != 0 {
		t.Fatalf("exit %d:\n%s", r.Code, r.Stderr)
	}
	mustContain(t, "stdout", r.Stdout, "env GREETING=hello from the cluster", "read /var/run/secrets/kubernetes.io/serviceaccount/namespace: "+f.ns)
	if b, err := os.ReadFile(mark); err != nil || !strings.Contains(string(b), "ran") {
		t.Errorf("the exec credential plugin did not run (%v)", err)
	}

	// Without --context, the current context's namespace is the one used,
	// and the error says so.
	r = f.run("exec", "--kubeconfig", p, "--target", "deploy/inventory", "--no-incoming", "--", f.probe(), "hostname")
	if r.Code == 0 {
		t.Fatal("the current context's missing namespace did not matter")
	}
	mustContain(t, "stderr", r.Stderr, "no-such-namespace")
}

// An account with every documented permission but pods/portforward can
// start the agent but not reach it: remocal says which permission is
// missing at once, and removes the agent it started.
func TestPortForwardForbidden(t *testing.T) {
	f := newFixture(t)
	f.deployInventory(1)
	token := f.documentedAccount("remocal-noforward", func(role string) string {
		return strings.Replace(role, "  resources: [pods/portforward]", "  resources: [pods/log]", 1)
	})
	f.kubeconfig = f.c.TokenKubeconfig(t, "dev", token, f.ns)
	msg := f.failing("deployment/inventory")
	mustContain(t, "error", msg, "may not create pods/portforward in namespace "+f.ns, "docs/kubernetes.md")
	f.noAgentJobs()
}
