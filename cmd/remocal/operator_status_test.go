package main

import (
	"strings"
	"testing"

	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/test/cluster"
)

// On the real cluster: with no operator installed, every operator command
// says so, operator true refuses, and auto connects directly saying why;
// with one installed (test/e2e/operator installs it), operator status
// answers. Which of the two the cluster is in is read from its APIService.
func TestOperatorDetectionOnTheCluster(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	ctx := t.Context()
	env := cleanEnv(t, "KUBECONFIG="+c.Kubeconfig)
	dir := t.TempDir()
	if _, err := c.Kubectl(ctx, "get", "apiservice", operator.APIServiceName); err == nil {
		r := runRemocal(t, dir, env, "operator", "status")
		if r.Code != 0 || !strings.Contains(r.Stdout, "version:") {
			t.Errorf("operator status with the operator installed: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		return
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"operator", "status"}, `no remocal operator in the cluster of context "remocal" (the API operator.remocal.dev/v1alpha1 is not registered)`},
		{[]string{"sessions", "-n", ns}, "does not serve the operator's API (is the operator installed? remocal operator status)"},
		{[]string{"sessions", "kill", "--all", "-n", ns}, "does not serve the operator's API"},
		{[]string{"ls", "-n", ns, "--operator", "true"}, "operator: true, but no remocal operator in the cluster"},
		{[]string{"exec", "-n", ns, "-t", "deployment/nope", "--operator", "true", "--", "true"}, "operator: true, but no remocal operator in the cluster"},
		// auto: one line, then the direct path (which finds no such target).
		{[]string{"exec", "-n", ns, "-t", "deployment/nope", "--", "true"}, `remocal: no operator in this cluster (context "remocal", API /apis/operator.remocal.dev/v1alpha1 not registered); connecting directly`},
	} {
		r := runRemocal(t, dir, env, tc.args...)
		if r.Code == 0 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("remocal %v: exit %d, stderr %q; want %q", tc.args, r.Code, r.Stderr, tc.want)
		}
	}
}
