package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/procwatch"
)

// sessionTTL is the shared install's session TTL: short, so that the
// lease tests see a dropped client's locks expire.
const sessionTTL = 15 * time.Second

// shared is the one installation the session tests share: an install
// takes a while and only one may exist in the cluster at a time. It is
// made on first use and removed by TestMain, or before a test that
// installs the operator its own way (dropShared).
var shared struct {
	mu       sync.Mutex
	in       *install
	installs int
}

// sharedOperator returns the shared installation, installing it first.
// Each test ends its own sessions and deletes its namespaces.
func sharedOperator(t *testing.T) *install {
	t.Helper()
	c := cluster.Require(t)
	buildImages(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.in == nil {
		in, err := installShared(t, c)
		if err != nil {
			// What was installed goes; the next test tries again.
			shared.in = in
			uninstallSharedLocked()
			t.Fatalf("installing the operator for the session tests: %v", err)
		}
		shared.in = in
	}
	return shared.in
}

func installShared(t *testing.T, c *cluster.Cluster) (*install, error) {
	reapLeftovers(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// A fresh name each time: an earlier shared install's namespace may
	// still be terminating.
	shared.installs++
	in := &install{c: c, ns: fmt.Sprintf("remocal-e2e-sessions-%d-%d", os.Getpid(), shared.installs), release: "remocal"}
	start := time.Now()
	if _, err := c.Helm(ctx, "install", in.release, chartDir(t), "--namespace", in.ns, "--create-namespace",
		"--set", "image.tag="+version, "--set", "agent.image.tag="+version, "--set", "image.pullPolicy=Never",
		"--set", "sessionTTL="+sessionTTL.String(), "--set", "replicas=1"); err != nil {
		return in, err
	}
	// The agents are privileged: docs/operator.md's Install step.
	if _, err := c.Kubectl(ctx, "label", "namespace", in.ns, "pod-security.kubernetes.io/enforce=privileged"); err != nil {
		return in, err
	}
	if _, err := c.Kubectl(ctx, "wait", "apiservice/"+apiService, "--for=condition=Available", "--timeout=150s"); err != nil {
		return in, fmt.Errorf("the operator's API did not become available: %w", err)
	}
	t.Logf("shared operator installed and available in %s (namespace %s, session TTL %s)", time.Since(start).Round(100*time.Millisecond), in.ns, sessionTTL)
	return in, nil
}

// uninstallShared removes the shared installation, if a test made one.
func uninstallShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	uninstallSharedLocked()
}

// dropShared is for tests that install the operator themselves: only one
// installation may exist.
func dropShared() { uninstallShared() }

func uninstallSharedLocked() {
	if shared.in == nil {
		return
	}
	in := shared.in
	shared.in = nil
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := in.c.Helm(ctx, "uninstall", in.release, "--namespace", in.ns, "--wait", "--timeout=90s"); err != nil {
		fmt.Fprintln(os.Stderr, "helm uninstall of the shared operator:", err)
	}
	if _, err := in.c.Kubectl(ctx, "delete", "namespace", in.ns, "--ignore-not-found", "--wait=false"); err != nil {
		fmt.Fprintln(os.Stderr, "deleting the shared operator's namespace:", err)
	}
}

// fixture is one session test: the shared operator, a namespace of
// applications, and laptops of developers who reach the cluster only
// through the kube-apiserver with their own credentials.
type fixture struct {
	t  *testing.T
	c  *cluster.Cluster
	op *install
	ns string
	// config is the project configuration developers start with.
	config string

	toolbox *cluster.Toolbox
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	op := sharedOperator(t)
	f := &fixture{t: t, c: op.c, op: op, ns: op.c.Namespace(t), config: `{}`}
	f.toolbox = op.c.Toolbox(f.ns)
	// Runs after the test's remocal processes were killed (registered
	// before them): their sessions, Disconnected, would keep their locks
	// for the session TTL; an admin ends them at once.
	t.Cleanup(func() {
		if t.Failed() {
			f.op.dump(t)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := f.c.Kubectl(ctx, "-n", f.ns, "delete", "sessions", "--all"); err != nil {
			t.Errorf("ending the test's sessions: %v", err)
		}
		if out, err := f.c.Kubectl(ctx, "-n", f.ns, "get", "sessions", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("sessions left after kubectl delete sessions --all: %q %v", out, err)
		}
	})
	return f
}

// dev is a developer: an identity of their own and a laptop.
type dev struct {
	name       string
	kubeconfig string
	local      *cluster.LocalSide
	// project is the working directory of the developer's remocal runs,
	// with .remocal/config.json.
	project string
}

// user makes a developer; roles are ClusterRoles bound to them in the
// test's namespace (a RoleBinding, as a team gets its namespace).
func (f *fixture) user(name string, roles ...string) dev {
	f.t.Helper()
	d := dev{name: name, kubeconfig: f.c.User(f.t, name, "remocal-e2e-devs"), local: f.c.LocalSide(f.t), project: f.t.TempDir()}
	writeConfig(f.t, d.project, f.config)
	for _, r := range roles {
		f.bind(name, r)
	}
	return d
}

// bind binds ClusterRole role to user in the test's namespace.
func (f *fixture) bind(user, role string) {
	f.t.Helper()
	f.kubectl("create", "rolebinding", user+"-"+role, "--clusterrole="+role, "--user="+user)
}

// writeConfig is the project configuration of developers made after it.
func (f *fixture) writeConfig(jsonc string) { f.config = jsonc }

// configure replaces d's project configuration.
func (f *fixture) configure(d dev, jsonc string) {
	f.t.Helper()
	writeConfig(f.t, d.project, jsonc)
}

func writeConfig(t *testing.T, project, jsonc string) {
	t.Helper()
	dir := filepath.Join(project, ".remocal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(jsonc), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) ctx() context.Context { return testContext(f.t, 2*time.Minute) }

// kubectl runs kubectl as cluster-admin in the test's namespace.
func (f *fixture) kubectl(args ...string) string {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := f.c.Kubectl(ctx, append([]string{"-n", f.ns}, args...)...)
	if err != nil {
		f.t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(out)
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

// deployInventory runs examples/kubernetes/inventory.yaml with replicas
// pods and waits until they are ready.
func (f *fixture) deployInventory(replicas int) {
	f.t.Helper()
	root, err := cluster.ModuleRoot()
	if err != nil {
		f.t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "examples", "kubernetes", "inventory.yaml"))
	if err != nil {
		f.t.Fatal(err)
	}
	f.apply(strings.Replace(string(b), "replicas: 2", fmt.Sprintf("replicas: %d", replicas), 1))
	f.kubectl("rollout", "status", "deployment/inventory", "--timeout=90s")
}

// remocal is `remocal ARGS` on d's laptop with d's kubeconfig.
func (f *fixture) remocal(d dev, args ...string) *exec.Cmd {
	bin := gobuild.Program(f.t, gobuild.Remocal, gobuild.Options{Static: true, Version: version})
	cmd := d.local.Command(context.Background(), bin, args...)
	cmd.Dir = d.project
	cmd.Env = append(os.Environ(), "KUBECONFIG="+d.kubeconfig, "REMOCAL_CLIENT_NAME="+d.name+"@laptop")
	return cmd
}

// execArgs is `exec --operator true -n NS -t TARGET FLAGS -- ARGV`.
func (f *fixture) execArgs(target string, flags []string, argv []string) []string {
	args := append([]string{"exec", "--operator", "true", "-n", f.ns, "-t", target}, flags...)
	return append(append(args, "--"), argv...)
}

// exec runs a session to completion.
func (f *fixture) exec(d dev, target string, flags []string, argv ...string) procwatch.Result {
	f.t.Helper()
	return procwatch.Run(f.t, f.remocal(d, f.execArgs(target, flags, argv)...))
}

// start starts a session and returns it running.
func (f *fixture) start(d dev, target string, flags []string, argv ...string) *procwatch.Proc {
	f.t.Helper()
	return procwatch.Start(f.t, f.remocal(d, f.execArgs(target, flags, argv)...))
}

func (f *fixture) probe() string {
	return gobuild.Program(f.t, gobuild.Probe, gobuild.Options{Static: true})
}

// get sends GET url from the namespace's toolbox pod (cluster traffic, as
// another service would send it) and returns the body.
func (f *fixture) get(url string, headers ...string) (string, error) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return f.toolbox.Get(ctx, url, headers...)
}

// getUntil polls GET url from the toolbox until the body is want.
func (f *fixture) getUntil(url, want string, headers ...string) {
	f.t.Helper()
	err := poll.Until(f.ctx(), 90*time.Second, func() error {
		body, err := f.get(url, headers...)
		if err != nil {
			return err
		}
		if body != want {
			return fmt.Errorf("GET %s %v: %q, want %q", url, headers, body, want)
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

type podInfo struct{ name, ip string }

// pods lists the running, not terminating pods with selector, oldest first.
func (f *fixture) pods(selector string) []podInfo {
	f.t.Helper()
	out := f.kubectl("get", "pods", "-l", selector, "--field-selector=status.phase=Running", "--sort-by=.metadata.creationTimestamp",
		"-o", `jsonpath={range .items[*]}{.metadata.name} {.status.podIP} deleting={.metadata.deletionTimestamp}{"\n"}{end}`)
	var pods []podInfo
	for _, line := range strings.Split(out, "\n") {
		if fs := strings.Fields(line); len(fs) == 3 && fs[2] == "deleting=" {
			pods = append(pods, podInfo{name: fs[0], ip: fs[1]})
		}
	}
	return pods
}

func appURL(p podInfo, path string) string { return fmt.Sprintf("http://%s:8080%s", p.ip, path) }

// sessions lists the sessions of the test's namespace as cluster-admin.
func (f *fixture) sessions() []operator.Session {
	f.t.Helper()
	var list operator.SessionList
	if err := json.Unmarshal([]byte(f.kubectl("get", "sessions", "-o", "json")), &list); err != nil {
		f.t.Fatalf("kubectl get sessions -o json: %v", err)
	}
	return list.Items
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
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

// stop ends sessions as Ctrl-C would (SIGINT to the process group) and
// waits for them to exit.
func stop(ps ...*procwatch.Proc) {
	for _, p := range ps {
		syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGINT)
	}
	for _, p := range ps {
		p.Wait()
	}
}

// waitPods waits until exactly n running pods match selector.
func (f *fixture) waitPods(selector string, n int) {
	f.t.Helper()
	err := poll.Until(f.ctx(), 90*time.Second, func() error {
		if got := len(f.pods(selector)); got != n {
			return fmt.Errorf("%d running pods with %s, want %d", got, selector, n)
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}
