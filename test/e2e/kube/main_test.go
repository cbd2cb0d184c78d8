// Package kube runs `remocal exec` end to end against the real Kubernetes
// cluster of test/cluster: workloads from examples/kubernetes run in the
// cluster, the agent runs as a Job (or an ephemeral container) built from
// this checkout, and remocal runs on the "laptop" side: a network namespace
// whose only route leads to the apiserver (cluster.LocalSide). Whatever the
// local program reaches of the cluster, it reaches through remocal.
//
// Requests that must arrive at a target pod as cluster traffic come from a
// toolbox pod in the test's namespace; the test process never dials pod or
// Service addresses itself.
//
// Run with REMOCAL_CLUSTER=existing (after make cluster-up) or =up; see
// docs/cluster.md. Without it every test skips and says so.
package kube

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remocal/remocal/agent"
	"github.com/remocal/remocal/agent/target"
	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/procwatch"
)

func TestMain(m *testing.M) {
	cluster.Main(m, gobuild.Cleanup)
}

// version is the remocal binary's version in these tests; its default
// agent image is remocal.local/agent:<version>, which the tests build.
const version = "e2e"

var images struct {
	once sync.Once
	err  error
}

// buildImages builds and imports the agent and example images once per
// test binary, from this checkout.
func buildImages(t testing.TB) {
	images.once.Do(func() {
		dir, err := os.MkdirTemp("", "remocal-e2e-images")
		if err != nil {
			images.err = err
			return
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		_, images.err = cluster.BuildImages(ctx, cluster.ImageOptions{OutDir: dir, Tag: version, Version: version}, t.Logf)
	})
	if images.err != nil {
		t.Fatalf("building the images: %v", images.err)
	}
}

// fixture is one test's namespace in the cluster and its laptop.
type fixture struct {
	t     testing.TB
	c     *cluster.Cluster
	ns    string
	local *cluster.LocalSide
	// project is the working directory of remocal runs, with
	// .remocal/config.json.
	project string
	// kubeconfig is what remocal uses; tests may point it elsewhere.
	kubeconfig string

	toolbox *cluster.Toolbox // shared with the fixture's copies (with)
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	c := cluster.Require(t)
	buildImages(t)
	f := &fixture{t: t, c: c, ns: c.Namespace(t), local: c.LocalSide(t), project: t.TempDir(), kubeconfig: c.Kubeconfig}
	f.toolbox = c.Toolbox(f.ns)
	f.writeConfig(`{}`)
	return f
}

// with is the fixture for a subtest: the same namespace and laptop, with
// failures and logs going to t.
func (f *fixture) with(t testing.TB) *fixture {
	g := *f
	g.t = t
	return &g
}

// writeConfig replaces the project's .remocal/config.json.
func (f *fixture) writeConfig(jsonc string) {
	f.t.Helper()
	dir := filepath.Join(f.project, ".remocal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(jsonc), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	f.t.Cleanup(cancel)
	return ctx
}

// apply applies a manifest in the test's namespace; ":dev" image tags
// become the tests' tag.
func (f *fixture) apply(manifest string) {
	f.t.Helper()
	manifest = strings.ReplaceAll(manifest, ":dev\n", ":"+version+"\n")
	if _, err := f.c.KubectlInput(f.ctx(), manifest, "-n", f.ns, "apply", "-f", "-"); err != nil {
		f.t.Fatal(err)
	}
}

// applyExample applies examples/kubernetes/<name>.yaml (whose images have
// `make images`' tag, dev).
func (f *fixture) applyExample(name string) {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(f.t), "examples", "kubernetes", name+".yaml"))
	if err != nil {
		f.t.Fatal(err)
	}
	manifest := string(b)
	if !strings.Contains(manifest, ":dev\n") {
		f.t.Fatalf("examples/kubernetes/%s.yaml names no remocal.local image with tag dev", name)
	}
	f.apply(manifest)
}

// kubectl runs kubectl in the test's namespace.
func (f *fixture) kubectl(args ...string) string {
	f.t.Helper()
	// A context of its own, released at once: kubectl runs in poll loops.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := f.c.Kubectl(ctx, append([]string{"-n", f.ns}, args...)...)
	if err != nil {
		f.t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(out)
}

// rollout waits until a workload's pods are all ready.
func (f *fixture) rollout(workload string) {
	f.t.Helper()
	f.kubectl("rollout", "status", workload, "--timeout=90s")
}

// remocalCmd is `remocal ARGS` on the laptop, in the project directory.
func (f *fixture) remocalCmd(ctx context.Context, args ...string) *exec.Cmd {
	return f.remocalOn(ctx, laptop{}, args...)
}

// laptop is another developer: a local side of their own and the name
// other users see.
type laptop struct {
	local *cluster.LocalSide
	name  string
}

func (f *fixture) remocalOn(ctx context.Context, l laptop, args ...string) *exec.Cmd {
	bin := gobuild.Program(f.t, gobuild.Remocal, gobuild.Options{Static: true, Version: version})
	if l.local == nil {
		l.local = f.local
	}
	cmd := l.local.Command(ctx, bin, args...)
	cmd.Dir = f.project
	cmd.Env = append(os.Environ(), "KUBECONFIG="+f.kubeconfig)
	if l.name != "" {
		cmd.Env = append(cmd.Env, "REMOCAL_CLIENT_NAME="+l.name)
	}
	return cmd
}

// execArgs is `exec -n NS -t TARGET FLAGS -- ARGV`.
func (f *fixture) execArgs(target string, flags []string, argv []string) []string {
	args := append([]string{"exec", "-n", f.ns, "--target", target}, flags...)
	return append(append(args, "--"), argv...)
}

// exec runs `remocal exec` to completion.
func (f *fixture) exec(target string, flags []string, argv ...string) procwatch.Result {
	f.t.Helper()
	return f.run(f.execArgs(target, flags, argv)...)
}

// run runs remocal with args to completion.
func (f *fixture) run(args ...string) procwatch.Result {
	f.t.Helper()
	return procwatch.Run(f.t, f.remocalCmd(context.Background(), args...))
}

// start starts `remocal exec` and returns it running.
func (f *fixture) start(target string, flags []string, argv ...string) *procwatch.Proc {
	f.t.Helper()
	return f.startOn(laptop{}, target, flags, argv...)
}

// startOn starts `remocal exec` on another laptop.
func (f *fixture) startOn(l laptop, target string, flags []string, argv ...string) *procwatch.Proc {
	f.t.Helper()
	return procwatch.Start(f.t, f.remocalOn(context.Background(), l, f.execArgs(target, flags, argv)...))
}

// probe is the static test program of test/e2e.
func (f *fixture) probe() string {
	return gobuild.Program(f.t, gobuild.Probe, gobuild.Options{Static: true})
}

// get sends GET url from the namespace's toolbox pod with headers ("Name:
// value") and returns the body, or an error with what the toolbox said.
func (f *fixture) get(url string, headers ...string) (string, error) {
	f.t.Helper()
	return f.toolbox.Get(f.ctx(), url, headers...)
}

// mustGet is get that fails the test on error.
func (f *fixture) mustGet(url string, headers ...string) string {
	f.t.Helper()
	body, err := f.get(url, headers...)
	if err != nil {
		f.t.Fatalf("GET %s %v: %v", url, headers, err)
	}
	return body
}

// podOf returns the name and IP of the pod remocal chose, from the line
// it printed ("... this session uses POD ...") or the single pod of the
// selector.
func (f *fixture) pods(selector string) []podInfo {
	f.t.Helper()
	// A pod being deleted (a scale-down just after apply) still runs, but
	// no session picks it: leave it out too.
	out := f.kubectl("get", "pods", "-l", selector, "--field-selector=status.phase=Running", "--sort-by=.metadata.creationTimestamp",
		"-o", `jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.status.containerStatuses[0].containerID} deleting={.metadata.deletionTimestamp}{"\n"}{end}`)
	var pods []podInfo
	for _, line := range strings.Split(out, "\n") {
		if fs := strings.Fields(line); len(fs) == 4 && fs[3] == "deleting=" {
			pods = append(pods, podInfo{name: fs[0], ip: fs[1], containerID: fs[2]})
		}
	}
	if len(pods) == 0 {
		f.t.Fatalf("no running pod with %s", selector)
	}
	return pods
}

type podInfo struct{ name, ip, containerID string }

// remocalTables lists the nftables tables remocal's agent left in the
// pod's network namespace (the test runs on the node, as root).
func remocalTables(t *testing.T, containerID string) []string {
	t.Helper()
	proc, err := target.Container{ID: containerID}.Locate(context.Background())
	if err != nil {
		t.Fatalf("find the pod's container on the node: %v", err)
	}
	defer proc.Close()
	ours, err := agent.RedirectTables(proc.NetNS())
	if err != nil {
		t.Fatal(err)
	}
	return ours
}

func moduleRoot(t testing.TB) string {
	t.Helper()
	root, err := cluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}
