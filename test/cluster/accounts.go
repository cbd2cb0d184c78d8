package cluster

import (
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// TokenKubeconfig writes a kubeconfig for this cluster that authenticates
// as user with a bearer token; its only context, named user, is current
// and has namespace ns. Tests use it to act as an account with less than
// the admin's rights.
func (c *Cluster) TokenKubeconfig(tb testing.TB, user, token, ns string) string {
	tb.Helper()
	admin, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["remocal"] = admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: strings.TrimSpace(token)}
	cfg.Contexts[user] = &clientcmdapi.Context{Cluster: "remocal", AuthInfo: user, Namespace: ns}
	cfg.CurrentContext = user
	path := filepath.Join(tb.TempDir(), user+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		tb.Fatal(err)
	}
	return path
}

// ListerKubeconfig makes a service account "lister" in ns that may get,
// list and watch only resources (kubectl's resource names) there, and
// returns a kubeconfig for it whose context's namespace is ns.
func (c *Cluster) ListerKubeconfig(tb testing.TB, ns string, resources ...string) string {
	tb.Helper()
	ctx := tb.Context()
	for _, args := range [][]string{
		{"create", "serviceaccount", "lister"},
		{"create", "role", "lister", "--verb=get,list,watch", "--resource=" + strings.Join(resources, ",")},
		{"create", "rolebinding", "lister", "--role=lister", "--serviceaccount=" + ns + ":lister"},
	} {
		if _, err := c.Kubectl(ctx, append([]string{"-n", ns}, args...)...); err != nil {
			tb.Fatal(err)
		}
	}
	token, err := c.Kubectl(ctx, "-n", ns, "create", "token", "lister", "--duration=1h")
	if err != nil {
		tb.Fatal(err)
	}
	return c.TokenKubeconfig(tb, "lister", token, ns)
}
