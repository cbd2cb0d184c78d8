package cluster

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// component is something the harness builds with the Go toolchain in a
// generated module of its own, outside the checkout: $CACHE/NAME-VERSION/
// holds src/ (the generated go.mod and main), bin/ (the binaries) and
// build.log. A recipe hash in bin/.recipe marks a finished build; change the
// recipe and it is rebuilt.
type component struct {
	name    string
	version string
	// module is the generated module's go.mod, before resolution.
	module string
	// files are generated sources, by name.
	files map[string]string
	// generate, when set, adds files once the module's requirements are
	// downloaded (CoreDNS reads its plugin order from the module).
	generate func(ctx context.Context, b *builder, src string) (map[string]string, error)
	// pkgs are the main packages to build; their base names are the binaries.
	pkgs    []string
	ldflags string
	// tidy runs `go mod tidy` before building (modules with a main of their
	// own); otherwise `go build -mod=mod` resolves what the packages need.
	tidy bool
	bins []string
}

func (c *component) dir() string { return filepath.Join(CacheDir(), c.name+"-"+c.version) }
func (c *component) binDir() string {
	return filepath.Join(c.dir(), "bin")
}
func (c *component) bin(name string) string { return filepath.Join(c.binDir(), name) }

func (c *component) recipe() string {
	h := sha256.New()
	names := make([]string, 0, len(c.files))
	for n := range c.files {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n%v\n%v\n%v\n", c.name, c.version, c.module, c.ldflags, c.pkgs, c.tidy, c.generate != nil)
	for _, n := range names {
		fmt.Fprintf(h, "%s\n%s\n", n, c.files[n])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func (c *component) built() bool {
	b, err := os.ReadFile(filepath.Join(c.binDir(), ".recipe"))
	if err != nil || strings.TrimSpace(string(b)) != c.recipe() {
		return false
	}
	for _, n := range c.bins {
		if _, err := os.Stat(c.bin(n)); err != nil {
			return false
		}
	}
	return true
}

// builder runs the Go toolchain.
type builder struct {
	goBin string
	logf  Logf
}

func newBuilder(logf Logf) (*builder, error) {
	g, err := exec.LookPath("go")
	if err != nil {
		g = "/usr/local/go/bin/go"
		if _, err := os.Stat(g); err != nil {
			return nil, fmt.Errorf("the Go toolchain is needed to build the cluster: no go in PATH or /usr/local/go/bin")
		}
	}
	return &builder{goBin: g, logf: logf}, nil
}

// env is the Go environment of the generated modules: no workspace, no
// checkout's GOFLAGS, static binaries, the local toolchain, and the user's
// module proxy and caches.
func (b *builder) env() []string {
	return append(b.baseEnv(), "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOOS=linux", "GOARCH=amd64")
}

// baseEnv is the user's environment without the Go settings env sets.
func (b *builder) baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOFLAGS", "GOWORK", "CGO_ENABLED", "GOTOOLCHAIN", "GOOS", "GOARCH", "GO111MODULE":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// goCmd runs go in dir, appending its output to logPath.
func (b *builder) goCmd(ctx context.Context, dir, logPath string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, b.goBin, args...)
	cmd.Dir = dir
	cmd.Env = b.env()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", err
	}
	defer lf.Close()
	fmt.Fprintf(lf, "\n$ go %s\n", strings.Join(args, " "))
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = lf
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("go %s (in %s) failed: %w\n%s\n(full log: %s)", strings.Join(args, " "), dir, err, tailFile(logPath, 25), logPath)
	}
	fmt.Fprint(lf, out.String())
	return out.String(), nil
}

// ensure builds c unless its cached build matches the recipe.
func (b *builder) ensure(ctx context.Context, c *component) error {
	if c.built() {
		return nil
	}
	start := time.Now()
	b.logf("build: %s %s (first time only; cached in %s)", c.name, c.version, c.dir())
	src := filepath.Join(c.dir(), "src")
	if err := os.RemoveAll(c.dir()); err != nil {
		return err
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(c.dir(), "build.log")
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(c.module), 0o644); err != nil {
		return err
	}
	files := map[string]string{}
	for n, s := range c.files {
		files[n] = s
	}
	if c.generate != nil {
		gen, err := c.generate(ctx, b, src)
		if err != nil {
			return fmt.Errorf("build %s: %w", c.name, err)
		}
		for n, s := range gen {
			files[n] = s
		}
	}
	for n, s := range files {
		if err := os.WriteFile(filepath.Join(src, n), []byte(s), 0o644); err != nil {
			return err
		}
	}
	if c.tidy {
		if _, err := b.goCmd(ctx, src, logPath, "mod", "tidy"); err != nil {
			return err
		}
	}
	args := []string{"build", "-trimpath", "-ldflags", c.ldflags, "-o", c.binDir() + "/"}
	if _, err := b.goCmd(ctx, src, logPath, append(args, c.pkgs...)...); err != nil {
		return err
	}
	for _, n := range c.bins {
		if _, err := os.Stat(c.bin(n)); err != nil {
			return fmt.Errorf("build %s: %s missing after the build (log: %s)", c.name, n, logPath)
		}
	}
	if err := os.WriteFile(filepath.Join(c.binDir(), ".recipe"), []byte(c.recipe()+"\n"), 0o644); err != nil {
		return err
	}
	b.logf("build: %s %s done in %s", c.name, c.version, time.Since(start).Round(time.Second))
	return nil
}

// moduleDir downloads a module (through the module proxy) and returns its
// directory in the module cache and its go.mod path.
func (b *builder) moduleDir(ctx context.Context, mod string) (string, string, error) {
	tmp, err := os.MkdirTemp("", "remocal-cluster-mod")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte("module remocal.local/resolve\n\ngo 1.24.0\n"), 0o644); err != nil {
		return "", "", err
	}
	out, err := b.goCmd(ctx, tmp, filepath.Join(tmp, "log"), "mod", "download", "-json", mod)
	if err != nil {
		return "", "", err
	}
	var info struct{ Dir, GoMod, Error string }
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return "", "", fmt.Errorf("go mod download %s: %w", mod, err)
	}
	if info.Error != "" {
		return "", "", fmt.Errorf("go mod download %s: %s", mod, info.Error)
	}
	return info.Dir, info.GoMod, nil
}

// kubernetesComponent builds the Kubernetes binaries straight from the
// k8s.io/kubernetes module: its go.mod points every staging module at
// ./staging/src, which only works inside its own repository, so the
// generated module replaces each one with the published k8s.io/NAME at the
// matching v0.x version. The replace list is read from the release's own
// go.mod at build time, so it follows whatever the release has.
func kubernetesComponent() *component {
	c := &component{
		name:    "kubernetes",
		version: KubernetesVersion,
		bins:    []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"},
		module:  "module remocal.local/cluster/kubernetes\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes " + KubernetesVersion + "\n",
	}
	for _, n := range c.bins {
		c.pkgs = append(c.pkgs, "k8s.io/kubernetes/cmd/"+n)
	}
	major, minor := "1", strings.Split(strings.TrimPrefix(KubernetesVersion, "v"), ".")[1]
	var ld []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ld = append(ld,
			"-X", pkg+".gitVersion="+KubernetesVersion,
			"-X", pkg+".gitMajor="+major,
			"-X", pkg+".gitMinor="+minor,
			"-X", pkg+".gitTreeState=clean",
			"-X", pkg+".buildDate=1970-01-01T00:00:00Z")
	}
	c.ldflags = "-s -w " + strings.Join(ld, " ")
	c.generate = func(ctx context.Context, b *builder, src string) (map[string]string, error) {
		_, goMod, err := b.moduleDir(ctx, "k8s.io/kubernetes@"+KubernetesVersion)
		if err != nil {
			return nil, err
		}
		replaces, err := stagingReplaces(goMod)
		if err != nil {
			return nil, err
		}
		var sb strings.Builder
		sb.WriteString(c.module)
		sb.WriteString("\nreplace (\n")
		for _, m := range replaces {
			fmt.Fprintf(&sb, "\t%s => %s %s\n", m, m, StagingVersion)
		}
		sb.WriteString(")\n")
		return map[string]string{"go.mod": sb.String()}, nil
	}
	return c
}

var stagingRe = regexp.MustCompile(`^\s*(k8s\.io/[A-Za-z0-9._-]+)\s*=>\s*\./staging/src/`)

func stagingReplaces(goMod string) ([]string, error) {
	f, err := os.Open(goMod)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mods []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := stagingRe.FindStringSubmatch(sc.Text()); m != nil {
			mods = append(mods, m[1])
		}
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("no staging replaces found in %s", goMod)
	}
	return mods, sc.Err()
}

func etcdComponent() *component {
	return &component{
		name:    "etcd",
		version: EtcdVersion,
		module:  "module remocal.local/cluster/etcd\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 " + EtcdVersion + "\n",
		files: map[string]string{"main.go": `// Generated by remocal's test/cluster: etcd's own main, nothing else.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
`},
		pkgs:    []string{"."},
		ldflags: "-s -w",
		tidy:    true,
		bins:    []string{"etcd"},
	}
}

func cniComponent() *component {
	return &component{
		name:    "cni-plugins",
		version: CNIPluginsVersion,
		module:  "module remocal.local/cluster/cni\n\ngo 1.24.0\n\nrequire github.com/containernetworking/plugins " + CNIPluginsVersion + "\n",
		pkgs: []string{
			"github.com/containernetworking/plugins/plugins/main/bridge",
			"github.com/containernetworking/plugins/plugins/main/loopback",
			"github.com/containernetworking/plugins/plugins/ipam/host-local",
			"github.com/containernetworking/plugins/plugins/meta/portmap",
		},
		ldflags: "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=" + CNIPluginsVersion,
		bins:    []string{"bridge", "loopback", "host-local", "portmap"},
	}
}

// corednsPlugins is the minimal plugin set: cluster names only, no forward
// (the cluster has no upstream DNS and must not reach one).
var corednsPlugins = []string{"errors", "log", "health", "ready", "kubernetes", "cache", "loop", "loadbalance"}

// corednsComponent builds CoreDNS with corednsPlugins and the Kubernetes
// client libraries bumped to the cluster's version. Its main is generated:
// it imports only those plugins and sets the directive order from the
// module's own plugin.cfg.
func corednsComponent() *component {
	return &component{
		name:    "coredns",
		version: CoreDNSVersion,
		module: "module remocal.local/cluster/coredns\n\ngo 1.24.0\n\nrequire (\n" +
			"\tgithub.com/coredns/coredns " + CoreDNSVersion + "\n" +
			"\tk8s.io/api " + StagingVersion + "\n" +
			"\tk8s.io/apimachinery " + StagingVersion + "\n" +
			"\tk8s.io/client-go " + StagingVersion + "\n)\n",
		generate: func(ctx context.Context, b *builder, src string) (map[string]string, error) {
			dir, _, err := b.moduleDir(ctx, "github.com/coredns/coredns@"+CoreDNSVersion)
			if err != nil {
				return nil, err
			}
			cfg, err := os.ReadFile(filepath.Join(dir, "plugin.cfg"))
			if err != nil {
				return nil, err
			}
			return map[string]string{"main.go": corednsMain(string(cfg))}, nil
		},
		pkgs:    []string{"."},
		ldflags: "-s -w",
		tidy:    true,
		bins:    []string{"coredns"},
	}
}

func corednsMain(pluginCfg string) string {
	want := map[string]bool{}
	for _, p := range corednsPlugins {
		want[p] = true
	}
	var order []string
	imports := map[string]string{}
	for _, line := range strings.Split(pluginCfg, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, pkg, ok := strings.Cut(line, ":")
		if !ok || !want[name] {
			continue
		}
		order = append(order, name)
		if !strings.Contains(pkg, "/") {
			pkg = "github.com/coredns/coredns/plugin/" + pkg
		}
		imports[name] = pkg
	}
	var sb strings.Builder
	sb.WriteString("// Generated by remocal's test/cluster: CoreDNS with a minimal plugin set.\npackage main\n\nimport (\n")
	sb.WriteString("\t\"github.com/coredns/coredns/core/dnsserver\"\n\t\"github.com/coredns/coredns/coremain\"\n\n")
	for _, n := range order {
		fmt.Fprintf(&sb, "\t_ %q\n", imports[n])
	}
	sb.WriteString(")\n\nfunc init() {\n\tdnsserver.Directives = []string{\n")
	for _, n := range order {
		fmt.Fprintf(&sb, "\t\t%q,\n", n)
	}
	sb.WriteString("\t}\n}\n\nfunc main() { coremain.Run() }\n")
	return sb.String()
}

// binaries are the paths of everything the cluster runs.
type binaries struct {
	apiserver, controllerManager, scheduler, kubelet, kubeProxy, kubectl string
	etcd, coredns, pause, toolbox                                        string
	cniDir                                                               string
}

// Build builds (or finds cached) everything the cluster runs, without
// starting anything; Up does this first.
func Build(ctx context.Context, logf Logf) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	_, err := ensureBuilt(ctx, logf)
	return err
}

// ensureBuilt builds (or finds cached) every component.
func ensureBuilt(ctx context.Context, logf Logf) (*binaries, error) {
	b, err := newBuilder(logf)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		return nil, err
	}
	k8s, etcd, cni, coredns := kubernetesComponent(), etcdComponent(), cniComponent(), corednsComponent()
	for _, c := range []*component{etcd, cni, coredns, k8s} {
		if err := b.ensure(ctx, c); err != nil {
			return nil, err
		}
	}
	local, err := buildLocal(ctx, b)
	if err != nil {
		return nil, err
	}
	return &binaries{
		apiserver:         k8s.bin("kube-apiserver"),
		controllerManager: k8s.bin("kube-controller-manager"),
		scheduler:         k8s.bin("kube-scheduler"),
		kubelet:           k8s.bin("kubelet"),
		kubeProxy:         k8s.bin("kube-proxy"),
		kubectl:           k8s.bin("kubectl"),
		etcd:              etcd.bin("etcd"),
		coredns:           coredns.bin("coredns"),
		cniDir:            cni.binDir(),
		pause:             local["pause"],
		toolbox:           local["toolbox"],
	}, nil
}

// buildLocal builds the harness's own static programs (pause, toolbox) from
// this module. The Go build cache makes this quick after the first time.
func buildLocal(ctx context.Context, b *builder) (map[string]string, error) {
	out := filepath.Join(CacheDir(), "local")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	bins := map[string]string{}
	for _, name := range []string{"pause", "toolbox"} {
		pkg := "github.com/remocal/remocal/test/cluster/cmd/" + name
		p := filepath.Join(out, name)
		cmd := exec.CommandContext(ctx, b.goBin, "build", "-trimpath", "-ldflags", "-s -w", "-o", p, pkg)
		cmd.Env = append(b.baseEnv(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false", "GOOS=linux", "GOARCH=amd64")
		if dir, err := ModuleRoot(); err == nil {
			cmd.Dir = dir
		}
		if outb, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building %s: %w\n%s", pkg, err, outb)
		}
		bins[name] = p
	}
	return bins, nil
}

// ModuleRoot finds the checkout (the directory of remocal's go.mod) from
// the working directory up.
func ModuleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/remocal/remocal\n") {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", fmt.Errorf("not inside the remocal checkout (no go.mod of github.com/remocal/remocal above %s)", d)
		}
		d = p
	}
}
