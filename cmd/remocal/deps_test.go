package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRemocalLinksNoAPIServer keeps the Kubernetes API server libraries
// out of the remocal binary: they are the operator's (cmd/remocal-operator)
// and, linked here, their package initialisation cost every remocal
// process (launcher, keeper, session host, CLI) about 20 MB of memory and
// 30 ms at start.
func TestRemocalLinksNoAPIServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "k8s.io/apiserver/") || strings.HasPrefix(pkg, "github.com/remocal/remocal/operator") {
			t.Errorf("cmd/remocal depends on %s: keep the operator's server in cmd/remocal-operator", pkg)
		}
	}
}
