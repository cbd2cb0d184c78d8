package localenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// resolveAppBinary returns an executable examples/inventory: the given one,
// or one built from this repository. Builds are kept in the user cache
// directory under a hash of everything that goes into them, because linking
// costs a few hundred milliseconds on every Start while hashing a few source
// files costs well under one.
func resolveAppBinary(ctx context.Context, given string, logf func(string, ...any)) (string, error) {
	if given != "" {
		st, err := os.Stat(given)
		if err != nil {
			return "", fmt.Errorf("localenv: Options.AppBinary: %w", err)
		}
		if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("localenv: Options.AppBinary %s is not an executable file", given)
		}
		return filepath.Abs(given)
	}
	src, modRoot, err := inventorySource()
	if err != nil {
		return "", err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		if p := "/usr/local/go/bin/go"; fileExists(p) {
			goTool = p
		} else {
			return "", errors.New("localenv: the go command is needed to build examples/inventory (or set Options.AppBinary)")
		}
	}
	key, err := buildKey(src, modRoot, goTool)
	if err != nil {
		return "", err
	}
	cacheDir, err := os.UserCacheDir()
	if err == nil {
		cacheDir = filepath.Join(cacheDir, "remocal-localenv")
		err = os.MkdirAll(cacheDir, 0o755)
	}
	if err != nil {
		return "", fmt.Errorf("localenv: no cache directory for the inventory build (%v); set Options.AppBinary", err)
	}
	out := filepath.Join(cacheDir, "inventory-"+key[:20])
	if fileExists(out) {
		now := time.Now()
		os.Chtimes(out, now, now) // in use: keep it from pruneBuilds
		return out, nil
	}

	tmp, err := os.CreateTemp(cacheDir, "inventory-build-*")
	if err != nil {
		return "", fmt.Errorf("localenv: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", tmp.Name(), ".")
	cmd.Dir = src
	// Static and local: the pods' private /etc must not matter to the
	// binary's loader, and no toolchain download may be attempted.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("localenv: go build examples/inventory in %s: %v\n%s", src, err, b)
	}
	// Rename is atomic, so concurrent test processes at worst both build.
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("localenv: %w", err)
	}
	logf("localenv: built %s", out)
	pruneBuilds(cacheDir, out)
	return out, nil
}

// pruneBuilds drops builds of other source versions (and temporaries of
// interrupted builds) that nobody has used for a day; other checkouts may
// still use recent ones.
func pruneBuilds(dir, keep string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, d := range ents {
		p := filepath.Join(dir, d.Name())
		if p == keep || !strings.HasPrefix(d.Name(), "inventory-") {
			continue
		}
		if info, err := d.Info(); err == nil && time.Since(info.ModTime()) > 24*time.Hour {
			os.Remove(p)
		}
	}
}

// inventorySource finds examples/inventory next to this package's source,
// which is where tests and the demo run from.
func inventorySource() (src, modRoot string, err error) {
	_, file, _, ok := runtime.Caller(0)
	if ok && filepath.IsAbs(file) {
		modRoot = filepath.Join(filepath.Dir(file), "..", "..")
		src = filepath.Join(modRoot, "examples", "inventory")
		if fileExists(filepath.Join(src, "main.go")) && fileExists(filepath.Join(modRoot, "go.mod")) {
			return src, modRoot, nil
		}
	}
	return "", "", errors.New("localenv: cannot find the examples/inventory source (binary built with -trimpath or moved?); build it and set Options.AppBinary")
}

// buildKey hashes the package's non-test sources, go.mod and the toolchain.
func buildKey(src, modRoot, goTool string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "recipe=1 CGO_ENABLED=0 go=%s arch=%s\n", goTool, runtime.GOARCH)
	if st, err := os.Stat(goTool); err == nil {
		fmt.Fprintf(h, "gotool=%d %d\n", st.Size(), st.ModTime().UnixNano())
	}
	files, err := filepath.Glob(filepath.Join(src, "*.go"))
	if err != nil {
		return "", err
	}
	files = slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, "_test.go") })
	files = append(files, filepath.Join(modRoot, "go.mod"))
	slices.Sort(files)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return "", fmt.Errorf("localenv: hash inventory sources: %w", err)
		}
		fmt.Fprintf(h, "file %s\n", filepath.Base(f))
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", fmt.Errorf("localenv: hash inventory sources: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
