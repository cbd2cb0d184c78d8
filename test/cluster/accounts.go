package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// User makes an identity the cluster authenticates as name, member of
// groups: a client certificate (CN name, O groups) signed by the cluster
// CA, valid for a day, as real clusters authenticate people. It returns a
// kubeconfig for it (context namespace "default"), removed when the test
// ends. The user has no rights until the test binds some.
func (c *Cluster) User(tb testing.TB, name string, groups ...string) string {
	tb.Helper()
	clusterCA, err := loadCA("ca")
	if err != nil {
		tb.Fatalf("the cluster CA: %v", err)
	}
	crt, key, err := clusterCA.issue(leaf{cn: name, orgs: groups, client: true, validity: 24 * time.Hour})
	if err != nil {
		tb.Fatalf("a certificate for %s: %v", name, err)
	}
	path := filepath.Join(tb.TempDir(), name+".kubeconfig")
	if err := os.WriteFile(path, kubeconfig(name, clusterCA.certPEM(), crt, key), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// As is the cluster seen through another kubeconfig (a User's, a
// TokenKubeconfig): its Kubectl and Helm act as that identity.
func (c *Cluster) As(kubeconfig string) *Cluster {
	d := *c
	d.Kubeconfig = kubeconfig
	return &d
}
