// Package gobuild builds this module's programs for tests: the remocal
// binary, the e2e probe, examples. Each distinct build happens once per test
// binary, into a directory that Cleanup removes (call it from TestMain,
// e.g. as a localenv.Main after-function).
package gobuild

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Well-known packages.
const (
	Remocal = "github.com/remocal/remocal/cmd/remocal"
	// Operator is the operator's server, cmd/remocal-operator.
	Operator = "github.com/remocal/remocal/cmd/remocal-operator"
	// Probe is the e2e test program (test/e2e/testdata/probe).
	Probe = "github.com/remocal/remocal/test/e2e/testdata/probe"
)

// Options vary a build.
type Options struct {
	// Static builds with CGO_ENABLED=0: a statically linked binary, the
	// hardest case for interposition.
	Static bool
	// Version is stamped into main.version.
	Version string
}

var (
	mu     sync.Mutex
	dir    string
	builds = map[string]*build{}
)

type build struct {
	once sync.Once
	path string
	err  error
}

// Program returns the path of pkg built with o, building it on first use.
func Program(tb testing.TB, pkg string, o Options) string {
	tb.Helper()
	key := fmt.Sprintf("%s|%v|%s", pkg, o.Static, o.Version)
	mu.Lock()
	if dir == "" {
		d, err := os.MkdirTemp("", "remocal-test-bin")
		if err != nil {
			mu.Unlock()
			tb.Fatal(err)
		}
		dir = d
	}
	b, ok := builds[key]
	if !ok {
		b = &build{}
		builds[key] = b
	}
	outDir := dir
	mu.Unlock()
	b.once.Do(func() {
		sum := sha256.Sum256([]byte(key))
		sub := filepath.Join(outDir, hex.EncodeToString(sum[:6]))
		if b.err = os.MkdirAll(sub, 0o755); b.err != nil {
			return
		}
		b.path = filepath.Join(sub, path.Base(pkg))
		args := []string{"build", "-o", b.path}
		if o.Version != "" {
			args = append(args, "-ldflags", "-X main.version="+o.Version)
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Env = os.Environ()
		if o.Static {
			cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, strings.TrimSpace(string(out)))
		}
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}

// Cleanup removes everything built.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
		dir = ""
		builds = map[string]*build{}
	}
}
