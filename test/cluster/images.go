package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// clusterImages writes the images the cluster itself needs (pause, CoreDNS,
// the test toolbox) to the cache and returns their paths.
func clusterImages(bins *binaries) ([]string, error) {
	dir := filepath.Join(CacheDir(), "images")
	imgs := []struct {
		file string
		img  Image
	}{
		{"pause.tar", Image{Name: PauseImage, Entrypoint: []string{"/pause"}, Files: []ImageFile{{Path: "/pause", Source: bins.pause, Mode: 0o755}}}},
		{"coredns.tar", Image{Name: CoreDNSImage, Entrypoint: []string{"/coredns"}, Files: []ImageFile{{Path: "/coredns", Source: bins.coredns, Mode: 0o755}}}},
		{"toolbox.tar", Image{Name: ToolboxImage, Entrypoint: []string{"/toolbox"}, Cmd: []string{"sleep"}, Files: []ImageFile{
			{Path: "/toolbox", Source: bins.toolbox, Mode: 0o755},
			{Path: "/bin/toolbox", Symlink: "/toolbox"},
		}}},
	}
	var paths []string
	for _, i := range imgs {
		p := filepath.Join(dir, i.file)
		if err := WriteImage(p, i.img); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func importClusterImages(ctx context.Context, bins *binaries, logf Logf) error {
	paths, err := clusterImages(bins)
	if err != nil {
		return err
	}
	c := handle(bins)
	for _, p := range paths {
		if err := c.ImportImage(ctx, p); err != nil {
			return err
		}
	}
	logf("up: imported %d images (pause, CoreDNS, toolbox) into containerd", len(paths))
	return nil
}

// importUserImages imports the checkout's bin/images/*.tar (make images), if
// there are any.
func importUserImages(ctx context.Context, logf Logf) error {
	root, err := ModuleRoot()
	if err != nil {
		return nil
	}
	tars, _ := filepath.Glob(filepath.Join(root, "bin", "images", "*.tar"))
	if len(tars) == 0 {
		return nil
	}
	c := handle(nil)
	for _, t := range tars {
		if err := c.ImportImage(ctx, t); err != nil {
			return err
		}
	}
	logf("up: imported %d images from %s", len(tars), filepath.Join(root, "bin", "images"))
	return nil
}

// ImageOptions say what BuildImages builds.
type ImageOptions struct {
	// OutDir receives one OCI archive per image (default: bin/images in
	// the checkout).
	OutDir string
	// Tag of the example images (default "dev").
	Tag string
	// Version is stamped into the remocal binary (main.version) and is
	// the agent image's tag (default "dev"): a remocal of version V asks
	// for remocal.local/agent:V by default, so the agent built with a
	// remocal is the one that remocal starts.
	Version string
	// Only names the images to build (agent, operator, inventory,
	// pyservice, postgres, grpcecho, and the queue tests' redis, nats,
	// queueapp); empty builds them all.
	Only []string
}

// Images of remocal itself and of the examples, as BuildImages names them.
const (
	AgentImageRepo     = "remocal.local/agent"
	OperatorImageRepo  = "remocal.local/operator"
	InventoryImageRepo = "remocal.local/examples/inventory"
	PyServiceImageRepo = "remocal.local/examples/pyservice"
	// GRPCEchoImageRepo is test/grpcecho, a gRPC server and client for
	// the tests of HTTP/2 routing (test/e2e/kube, TestGRPCThroughService).
	GRPCEchoImageRepo = "remocal.local/test/grpcecho"
)

// BuiltImage is one image BuildImages wrote.
type BuiltImage struct {
	Name string // full reference
	Path string // OCI archive
	Note string // why it was skipped, when Path is empty
}

// BuildImages builds remocal's own images from this checkout without a
// container engine: the agent (the remocal binary, static, entrypoint
// `remocal agent`), the operator (the remocal-operator binary, user
// 65532), the inventory example (a Go HTTP API), a small
// Python service (Debian's python3.11 with just the modules the service
// imports) and Postgres (Debian's PostgreSQL 15, server only). If a
// cluster is running, it imports them into its containerd.
func BuildImages(ctx context.Context, o ImageOptions, logf Logf) ([]BuiltImage, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join(root, "bin", "images")
	}
	if o.Tag == "" {
		o.Tag = "dev"
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	b, err := newBuilder(logf)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "remocal-images")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	build := func(pkg, out, ldflags string) error {
		cmd := exec.CommandContext(ctx, b.goBin, "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(b.baseEnv(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false", "GOOS=linux", "GOARCH=amd64")
		if outb, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %w\n%s", pkg, err, outb)
		}
		return nil
	}
	want := func(name string) bool { return len(o.Only) == 0 || slices.Contains(o.Only, name) }
	var built []BuiltImage
	write := func(file string, img Image) error {
		p := filepath.Join(o.OutDir, file)
		if err := WriteImage(p, img); err != nil {
			return err
		}
		st, _ := os.Stat(p)
		logf("images: %s -> %s (%.1f MiB)", img.Name, p, float64(st.Size())/(1<<20))
		built = append(built, BuiltImage{Name: img.Name, Path: p})
		return nil
	}
	if want("agent") || want("operator") {
		remocal, operatorBin := filepath.Join(work, "remocal"), filepath.Join(work, "remocal-operator")
		for _, b := range []struct{ pkg, out, image string }{{"./cmd/remocal", remocal, "agent"}, {"./cmd/remocal-operator", operatorBin, "operator"}} {
			if !want(b.image) {
				continue
			}
			if err := build(b.pkg, b.out, "-s -w -X main.version="+o.Version); err != nil {
				return nil, err
			}
		}
		if err := writeRemocalImages(write, want, remocal, operatorBin, o.Version); err != nil {
			return nil, err
		}
	}
	if want("inventory") {
		inventory := filepath.Join(work, "inventory")
		if err := build("./examples/inventory", inventory, "-s -w"); err != nil {
			return nil, err
		}
		if err := write("inventory.tar", Image{
			Name:       InventoryImageRepo + ":" + o.Tag,
			Entrypoint: []string{"/inventory"},
			Env:        []string{"PATH=/", "LISTEN_ADDR=:8080"},
			Files:      []ImageFile{{Path: "/inventory", Source: inventory, Mode: 0o755}},
		}); err != nil {
			return nil, err
		}
	}
	if want("grpcecho") {
		bin := filepath.Join(work, "grpcecho")
		if err := build("./test/grpcecho", bin, "-s -w"); err != nil {
			return nil, err
		}
		if err := write("grpcecho.tar", Image{
			Name:       GRPCEchoImageRepo + ":" + o.Tag,
			Entrypoint: []string{"/grpcecho"},
			Env:        []string{"PATH=/"},
			Files:      []ImageFile{{Path: "/grpcecho", Source: bin, Mode: 0o755}},
		}); err != nil {
			return nil, err
		}
	}
	if want("queueapp") || want("redis") || want("nats") {
		bin := filepath.Join(work, "queueapp")
		if want("queueapp") {
			if err := build("./test/queueapp", bin, "-s -w"); err != nil {
				return nil, err
			}
		}
		skip := func(name, note string) {
			logf("images: %s skipped: %s", name, note)
			built = append(built, BuiltImage{Name: name, Note: note})
		}
		if err := writeQueueImages(ctx, write, want, skip, bin, o.Tag); err != nil {
			return nil, err
		}
	}
	if want("pyservice") {
		pyName := PyServiceImageRepo + ":" + o.Tag
		pyFiles, note, err := pythonServiceFiles(ctx, filepath.Join(root, "examples", "pyservice", "app.py"))
		if err != nil {
			return nil, err
		}
		if note != "" {
			logf("images: %s skipped: %s", pyName, note)
			built = append(built, BuiltImage{Name: pyName, Note: note})
		} else if err := write("pyservice.tar", Image{
			Name:       pyName,
			Entrypoint: []string{"/usr/bin/python3.11", "-I", "-S", "/app/app.py"},
			Env:        []string{"PATH=/usr/bin", "PYTHONHOME=/usr", "PYTHONDONTWRITEBYTECODE=1", "LISTEN_PORT=8080"},
			Files:      pyFiles,
		}); err != nil {
			return nil, err
		}
	}
	if want("postgres") {
		pgName := PostgresImageRepo + ":" + o.Tag
		pgImg, note, err := postgresImage(ctx, pgName, filepath.Join(root, "examples", "postgres", "entrypoint.sh"))
		if err != nil {
			return nil, err
		}
		if note != "" {
			logf("images: %s skipped: %s", pgName, note)
			built = append(built, BuiltImage{Name: pgName, Note: note})
		} else if err := write("postgres.tar", pgImg); err != nil {
			return nil, err
		}
	}
	if Running(ctx) {
		c := handle(nil)
		for _, bi := range built {
			if bi.Path == "" {
				continue
			}
			if err := c.ImportImage(ctx, bi.Path); err != nil {
				return built, err
			}
		}
		logf("images: imported into the running cluster")
	}
	return built, nil
}

// writeRemocalImages writes remocal's own images: the agent (the remocal
// binary, run as root: it enters its target's namespaces) and the operator
// (the remocal-operator binary, an unprivileged API server, user 65532 as
// distroless images name "nonroot"), each tagged with the version.
func writeRemocalImages(write func(string, Image) error, want func(string) bool, remocal, operatorBin, version string) error {
	if want("agent") {
		if err := write("agent.tar", Image{
			Name:       AgentImageRepo + ":" + version,
			Entrypoint: []string{"/remocal", "agent"},
			Files:      []ImageFile{{Path: "/remocal", Source: remocal, Mode: 0o755}},
		}); err != nil {
			return err
		}
	}
	if !want("operator") {
		return nil
	}
	return write("operator.tar", Image{
		Name:       OperatorImageRepo + ":" + version,
		Entrypoint: []string{"/remocal-operator"},
		User:       "65532:65532",
		Files: []ImageFile{
			{Path: "/remocal-operator", Source: operatorBin, Mode: 0o755},
			{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"), Mode: 0o644},
			{Path: "/etc/group", Data: []byte("root:x:0:\nnogroup:x:65534:\nnonroot:x:65532:\n"), Mode: 0o644},
		},
	})
}

// pythonServiceFiles collects what Debian's python3.11 needs to run app:
// the interpreter, its shared libraries (from ldd), and exactly the
// standard library files the app imports (asked of the interpreter
// itself). A note instead of files says why it cannot be built here.
func pythonServiceFiles(ctx context.Context, app string) ([]ImageFile, string, error) {
	const py = "/usr/bin/python3.11"
	if _, err := os.Stat(py); err != nil {
		return nil, "Debian's python3.11 is not installed (apt-get install python3.11)", nil
	}
	if _, err := os.Stat(app); err != nil {
		return nil, "", err
	}
	files := []ImageFile{{Path: "/usr/bin/python3.11", Source: py, Mode: 0o755}, {Path: "/app/app.py", Source: app, Mode: 0o644}}
	libs := map[string]bool{}
	if err := addLibraries(ctx, libs, py); err != nil {
		return nil, "", err
	}
	// Modules: run the app's imports (not the app) in isolated mode and
	// list every module file loaded, plus the landmark os.py.
	probe := `import sys, ast
src = open(sys.argv[1]).read()
for node in ast.walk(ast.parse(src)):
    if isinstance(node, ast.Import):
        for a in node.names: __import__(a.name)
    elif isinstance(node, ast.ImportFrom) and node.module:
        __import__(node.module)
import encodings.idna, encodings.utf_8, encodings.latin_1, encodings.ascii
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None)
    if f: print(f)
import os; print(os.__file__)
`
	cmd := exec.CommandContext(ctx, py, "-I", "-S", "-c", probe, app)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	mods, err := cmd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("listing the modules %s needs: %w", app, err)
	}
	seen := map[string]bool{}
	for _, f := range strings.Fields(string(mods)) {
		if !strings.HasPrefix(f, "/usr/lib/python3.11/") || seen[f] {
			continue
		}
		seen[f] = true
		if strings.HasSuffix(f, ".so") {
			if err := addLibraries(ctx, libs, f); err != nil {
				return nil, "", err
			}
		}
	}
	lfiles, err := libraryFiles(libs)
	if err != nil {
		return nil, "", err
	}
	files = append(files, lfiles...)
	var mfiles []string
	for f := range seen {
		mfiles = append(mfiles, f)
	}
	sort.Strings(mfiles)
	for _, f := range mfiles {
		files = append(files, ImageFile{Path: f, Source: f})
	}
	return files, "", nil
}

// addLibraries adds to libs the shared libraries each of bins loads (the
// dynamic loader included), by their paths on this machine, as ldd lists
// them.
func addLibraries(ctx context.Context, libs map[string]bool, bins ...string) error {
	for _, bin := range bins {
		out, err := exec.CommandContext(ctx, "ldd", bin).Output()
		if err != nil {
			return fmt.Errorf("ldd %s: %w (is it a dynamically linked program of this machine?)", bin, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "not found") {
				return fmt.Errorf("ldd %s: %s: install the package that has it", bin, strings.TrimSpace(line))
			}
			for _, f := range strings.Fields(line) {
				if strings.HasPrefix(f, "/") {
					libs[f] = true
				}
			}
		}
	}
	return nil
}

// libraryFiles are libs as image files at the paths the loader asks for,
// with the content of the files their symbolic links lead to.
func libraryFiles(libs map[string]bool) ([]ImageFile, error) {
	var files []ImageFile
	for l := range libs {
		real, err := filepath.EvalSymlinks(l)
		if err != nil {
			return nil, err
		}
		files = append(files, ImageFile{Path: l, Source: real, Mode: 0o755})
	}
	return files, nil
}
