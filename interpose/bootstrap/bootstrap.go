// Package bootstrap carries the LD_PRELOAD library that makes a program
// started outside remocal (by a debugger, an IDE) join a running session:
// its constructor connects to the socket named by session.SocketEnv,
// receives the seccomp filter, installs it and hands the listener back
// (package handoff), unless the process is supervised already. See
// bootstrap.c for the exact flow.
//
// The library is built from bootstrap.c by `make bootstrap` and committed,
// so building remocal needs no C compiler and the binary stays one file;
// Install writes it to disk for LD_PRELOAD.
package bootstrap

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

//go:embed libremocal_bootstrap.so
var library []byte

// Library returns the embedded shared object.
func Library() []byte { return library }

// FileName is the name Install gives the library: content-addressed, so
// that sessions of different remocal versions never overwrite a library
// another program is loading.
func FileName() string {
	sum := sha256.Sum256(library)
	return "libremocal_bootstrap-" + hex.EncodeToString(sum[:8]) + ".so"
}

// DefaultDir is where Install puts the library by default:
// $XDG_RUNTIME_DIR/remocal, else os.TempDir()/remocal-<uid>.
func DefaultDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "remocal")
	}
	return filepath.Join(os.TempDir(), "remocal-"+strconv.Itoa(os.Getuid()))
}

// Install writes the library to dir (created 0700 if missing) under a name
// that includes its content hash, atomically (temporary file and rename),
// and returns its path. An existing identical file is reused.
//
// dir must be a directory of the current user that nobody else can write
// to: every program started with the library runs its code, so a library
// planted by someone else (a shared /tmp) must never be picked up.
func Install(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("install the bootstrap library: no directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("install the bootstrap library: %w", err)
	}
	if err := checkPrivate(dir); err != nil {
		return "", err
	}
	path := filepath.Join(dir, FileName())
	if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, library) {
		return path, nil
	}
	tmp, err := os.CreateTemp(dir, ".libremocal_bootstrap-*.tmp")
	if err != nil {
		return "", fmt.Errorf("install the bootstrap library: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	_, err = tmp.Write(library)
	if err == nil {
		// Readable by others: a program the debugger starts as another
		// user must still be able to load it (dir's mode decides).
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return "", fmt.Errorf("install the bootstrap library in %s: %w", dir, err)
	}
	return path, nil
}

// checkPrivate refuses a directory that is a symbolic link, belongs to
// someone else, or that group or others may write to.
func checkPrivate(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("install the bootstrap library: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
		return fmt.Errorf("install the bootstrap library: %s is not a directory (a symbolic link?); remove it or choose another directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("install the bootstrap library: %s belongs to user %d, not to you (%d); remove it or choose another directory", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("install the bootstrap library: others may write to %s (mode %v); run chmod go-w on it or choose another directory", dir, fi.Mode().Perm())
	}
	return nil
}
