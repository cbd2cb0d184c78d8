package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The Postgres example's image as a pod with no securityContext: the
// image's own user (not root, which postgres refuses) runs initdb into a
// subdirectory of an emptyDir and then a server that accepts connections.
// Without a password it stops at once and says what to set.
func TestPostgresImage(t *testing.T) {
	c := Require(t)
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	name := PostgresImageRepo + ":test"
	img, note, err := postgresImage(ctx, name, filepath.Join(root, "examples", "postgres", "entrypoint.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if note != "" {
		t.Skipf("%s: %s", name, note)
	}
	archive := filepath.Join(t.TempDir(), "postgres.tar")
	if err := WriteImage(archive, img); err != nil {
		t.Fatal(err)
	}
	if err := c.ImportImage(ctx, archive); err != nil {
		t.Fatal(err)
	}
	pod := func(podName, env string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: postgres
    image: %s
    imagePullPolicy: Never
    env: [%s]
    readinessProbe:
      exec: {command: [pg_isready, -q, -h, /tmp]}
      periodSeconds: 1
    volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
  volumes: [{name: data, emptyDir: {}}]
`, podName, name, env)
	}
	manifest := pod("db", "{name: POSTGRES_PASSWORD, value: secret}") + "---\n" + pod("nopassword", "")
	if _, err := c.KubectlInput(ctx, manifest, "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.WaitPod(ctx, ns, "db", "Ready", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("postgres ready %v after the pod was created", time.Since(start).Round(10*time.Millisecond))
	// dash builtins only: the image has no ps or id.
	uid, err := c.Kubectl(ctx, "-n", ns, "exec", "db", "--", "sh", "-c", `while read -r k v rest; do [ "$k" = Uid: ] && echo "$v" && exit; done </proc/1/status; exit 1`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(uid) != postgresUID {
		t.Errorf("the server runs as uid %q, want the image's postgres user %s", strings.TrimSpace(uid), postgresUID)
	}
	if _, err := c.Kubectl(ctx, "-n", ns, "wait", "pod/nopassword", "--for=jsonpath={.status.phase}=Failed", "--timeout=60s"); err != nil {
		t.Fatalf("the pod without POSTGRES_PASSWORD must fail: %v", err)
	}
	logs, err := c.Kubectl(ctx, "-n", ns, "logs", "nopassword")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "POSTGRES_PASSWORD is empty: set it") {
		t.Errorf("the pod without POSTGRES_PASSWORD says: %q", logs)
	}
}
