package cluster

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// These run in every `go test`: no root, no cluster.

func readTar(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
}

func TestWriteImageIsAValidReproducibleOCIArchive(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "prog")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := Image{Name: "remocal.local/x/y:v2", Entrypoint: []string{"/prog"}, Files: []ImageFile{
		{Path: "/prog", Source: bin},
		{Path: "/etc/app/conf", Data: []byte("k=v\n")},
		{Path: "/bin/prog", Symlink: "/prog"},
	}}
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	if err := WriteImage(a, img); err != nil {
		t.Fatal(err)
	}
	if err := WriteImage(b, img); err != nil {
		t.Fatal(err)
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Fatal("the same image written twice differs")
	}
	files := readTar(t, bytes.NewReader(ab))
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Fatalf("oci-layout: %q", files["oci-layout"])
	}
	blob := func(d string) []byte {
		t.Helper()
		b, ok := files["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")]
		if !ok {
			t.Fatalf("blob %s missing", d)
		}
		sum := sha256.Sum256(b)
		if "sha256:"+hex.EncodeToString(sum[:]) != d {
			t.Fatalf("blob %s has another digest", d)
		}
		return b
	}
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["io.containerd.image.name"] != img.Name ||
		index.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v2" {
		t.Fatalf("index: %+v", index)
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Config struct{ Entrypoint []string }
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(blob(manifest.Config.Digest), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(manifest.Layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 || cfg.Config.Entrypoint[0] != "/prog" {
		t.Fatalf("manifest %+v config %+v", manifest, cfg)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(manifest.Layers[0].Digest)))
	if err != nil {
		t.Fatal(err)
	}
	layer, _ := io.ReadAll(zr)
	sum := sha256.Sum256(layer)
	if "sha256:"+hex.EncodeToString(sum[:]) != cfg.RootFS.DiffIDs[0] {
		t.Fatal("diff_id is not the uncompressed layer's digest")
	}
	lf := readTar(t, bytes.NewReader(layer))
	for _, want := range []string{"prog", "etc/", "etc/app/", "etc/app/conf", "etc/passwd", "bin/prog", "tmp/"} {
		if _, ok := lf[want]; !ok {
			t.Errorf("layer lacks %s (has %v)", want, keys(lf))
		}
	}
	if string(lf["prog"]) != "#!/bin/true\n" {
		t.Errorf("prog content %q", lf["prog"])
	}
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestCoreDNSMainKeepsPluginCfgOrderAndOnlyTheChosenPlugins(t *testing.T) {
	cfg := "# comment\nmetadata:metadata\nready:ready\nlog:log\nerrors:errors\ncache:cache\nkubernetes:kubernetes\nforward:forward\nloop:loop\nhealth:health\nexternal:github.com/x/external\n"
	src := corednsMain(cfg)
	if strings.Contains(src, "forward") || strings.Contains(src, "metadata") || strings.Contains(src, "external") {
		t.Fatalf("unwanted plugin in:\n%s", src)
	}
	order := []string{`"ready",`, `"log",`, `"errors",`, `"cache",`, `"kubernetes",`, `"loop",`, `"health",`}
	last := -1
	for _, o := range order {
		i := strings.Index(src, o)
		if i < 0 || i < last {
			t.Fatalf("%s missing or out of plugin.cfg order in:\n%s", o, src)
		}
		last = i
	}
	if !strings.Contains(src, `_ "github.com/coredns/coredns/plugin/kubernetes"`) {
		t.Fatalf("import missing:\n%s", src)
	}
}

func TestStagingReplacesReadsTheReleaseGoMod(t *testing.T) {
	p := filepath.Join(t.TempDir(), "go.mod")
	_ = os.WriteFile(p, []byte("module k8s.io/kubernetes\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n\tgithub.com/x/y => github.com/x/y v1.0.0\n)\n"), 0o644)
	got, err := stagingReplaces(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "k8s.io/api,k8s.io/client-go" {
		t.Fatalf("got %v", got)
	}
}

func TestJournalRecordsOnlyTheOutermostCreatedDirectory(t *testing.T) {
	old := StateDir
	StateDir = t.TempDir()
	t.Cleanup(func() { StateDir = old })
	j := &journal{Sysctls: map[string]string{}}
	base := filepath.Join(StateDir, "x")
	if err := j.mkdir(filepath.Join(base, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := j.mkdir(filepath.Join(base, "a", "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	if len(j.CreatedPaths) != 1 || j.CreatedPaths[0] != base {
		t.Fatalf("created paths %v, want [%s]", j.CreatedPaths, base)
	}
	j2, err := loadJournal()
	if err != nil || j2 == nil || len(j2.CreatedPaths) != 1 {
		t.Fatalf("reloaded journal %+v %v", j2, err)
	}
}

func TestRemovableOnlyCoversTheHarnessPaths(t *testing.T) {
	for p, want := range map[string]bool{
		StateDir:                  true,
		StateDir + "/etcd":        true,
		RunDir:                    true,
		"/run/containerd":         true,
		"/var/lib/kubelet":        true,
		"/var/lib":                false,
		"/":                       false,
		"/etc":                    false,
		StateDir + "-other":       false,
		"/var/lib/kubelet/../../": false,
	} {
		if got := removable(p); got != want {
			t.Errorf("removable(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestEgressGuardRules(t *testing.T) {
	r := guardRules()
	for _, want := range []string{
		"table inet " + guardTable,
		"hook forward priority filter - 10",
		`iifname "` + CNIBridge + `" oifname != "` + CNIBridge + `" counter drop`,
		"ip saddr " + PodCIDR + ` oifname != "` + CNIBridge + `" counter drop`,
	} {
		if !strings.Contains(r, want) {
			t.Errorf("guard rules lack %q:\n%s", want, r)
		}
	}
}

// A descriptor this process inherited without close-on-exec (flock's lock,
// say) does not reach the daemons it starts.
func TestDaemonsDoNotInheritDescriptors(t *testing.T) {
	fd, err := unix.Open(filepath.Join(t.TempDir(), "lock"), unix.O_CREAT|unix.O_RDWR, 0o600) // no O_CLOEXEC, as flock(1) opens it
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	childSees := func() string {
		out, err := exec.Command("/bin/sh", "-c", fmt.Sprintf("if [ -e /proc/self/fd/%d ]; then echo open; else echo closed; fi", fd)).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	if got := childSees(); got != "open" {
		t.Fatalf("before: a child sees descriptor %d %s, want open (the test's premise)", fd, got)
	}
	if err := closeInheritedOnExec(); err != nil {
		t.Fatal(err)
	}
	if got := childSees(); got != "closed" {
		t.Errorf("after closeInheritedOnExec a child sees descriptor %d %s, want closed", fd, got)
	}
}
