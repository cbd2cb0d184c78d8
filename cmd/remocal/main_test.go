package main

import (
	"os"
	"strings"
	"testing"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/gobuild"
)

// The command's tests run the built binary. Those that need Kubernetes run
// against the test cluster when REMOCAL_CLUSTER is set (docs/cluster.md)
// and skip otherwise.
func TestMain(m *testing.M) { cluster.Main(m, gobuild.Cleanup) }

// remocal is the binary under test.
func remocal(t *testing.T) string {
	t.Helper()
	return gobuild.Program(t, gobuild.Remocal, gobuild.Options{})
}

// cleanEnv is the test's environment without credentials it might have
// (KUBECONFIG, ~/.kube/config): each test says which cluster it means.
func cleanEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(append(env, "HOME="+t.TempDir()), extra...)
}
