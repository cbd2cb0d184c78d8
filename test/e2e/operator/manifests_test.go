package operator

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/poll"
)

// plainNamespace is the namespace deploy/remocal-operator.yaml installs in.
const plainNamespace = "remocal"

// TestPlainManifestsInstall installs deploy/remocal-operator.yaml as
// docs/operator.md says (kubectl apply, a certificate made with openssl,
// the APIService's caBundle patched in), with this checkout's images, and
// checks that a user bound to remocal-user reaches the API; kubectl delete
// -f removes it.
func TestPlainManifestsInstall(t *testing.T) {
	c := cluster.Require(t)
	buildImages(t)
	dropShared()
	reapLeftovers(t, c)
	ctx := testContext(t, 5*time.Minute)
	if out, err := c.Kubectl(ctx, "get", "namespace", plainNamespace, "--ignore-not-found", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("namespace %s exists already (%v): the plain manifests install there; delete it first (kubectl delete namespace %s)", plainNamespace, err, plainNamespace)
	}
	root, err := cluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, cluster.ManifestsPath))
	if err != nil {
		t.Fatal(err)
	}
	// This checkout's images instead of the release's.
	manifest := strings.ReplaceAll(string(b), ":"+appVersion(t)+`"`, ":"+version+`"`)
	manifest = strings.ReplaceAll(manifest, ":"+appVersion(t)+"\n", ":"+version+"\n")
	if !strings.Contains(manifest, cluster.OperatorImageRepo+":"+version) {
		t.Fatalf("%s names no image %s:%s", cluster.ManifestsPath, cluster.OperatorImageRepo, appVersion(t))
	}
	in := &install{c: c, ns: plainNamespace}
	t.Cleanup(func() {
		if t.Failed() {
			in.dump(t)
		}
		deletePlain(t, c, manifest)
	})
	if _, err := c.KubectlInput(ctx, manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}

	// The certificate, as docs/operator.md makes it.
	dir := t.TempDir()
	script := `set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -subj /CN=remocal-operator-ca -keyout ca.key -out ca.crt
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=remocal-operator.remocal.svc -keyout tls.key -out tls.csr
printf 'subjectAltName=DNS:remocal-operator.remocal.svc,DNS:remocal-operator.remocal.svc.cluster.local\nextendedKeyUsage=serverAuth\n' > san.ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile san.ext -out tls.crt
`
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	if _, err := c.Kubectl(ctx, "-n", plainNamespace, "create", "secret", "tls", "remocal-operator-tls",
		"--cert="+filepath.Join(dir, "tls.crt"), "--key="+filepath.Join(dir, "tls.key")); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kubectl(ctx, "patch", "apiservice", apiService, "--type=merge",
		"-p", `{"spec":{"caBundle":"`+base64Std(ca)+`"}}`); err != nil {
		t.Fatal(err)
	}
	in.waitAvailable(t)

	if _, err := c.Kubectl(ctx, "create", "clusterrolebinding", "remocal-e2e-plain", "--clusterrole=remocal-user", "--user=alice"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := c.Kubectl(context.Background(), "delete", "clusterrolebinding", "remocal-e2e-plain", "--ignore-not-found"); err != nil {
			t.Error(err)
		}
	})
	alice := c.As(c.User(t, "alice"))
	// The operator's own Deployment is a target like any other.
	err = poll.Until(ctx, time.Minute, func() error {
		_, err := alice.Kubectl(ctx, "get", "targets", "-n", plainNamespace, "deployment.remocal-operator", "-o", "name")
		return err
	})
	if err != nil {
		t.Fatalf("alice cannot get target deployment.remocal-operator: %v", err)
	}
}

// deletePlain removes what the plain manifests installed (the namespace
// with everything in it included) and checks the APIService is gone.
func deletePlain(t *testing.T, c *cluster.Cluster, manifest string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := c.KubectlInput(ctx, manifest, "delete", "-f", "-", "--ignore-not-found", "--wait", "--timeout=150s"); err != nil {
		t.Errorf("kubectl delete -f %s: %v", cluster.ManifestsPath, err)
		return
	}
	if out, err := c.Kubectl(ctx, "get", "apiservice", apiService, "--ignore-not-found", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("after kubectl delete -f, the APIService: %q %v", out, err)
	}
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
