package server

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// RuntimeDir is the per-user directory for the daemon's socket and the
// session sockets: $XDG_RUNTIME_DIR/remocal, or /tmp/remocal-<uid>. It is
// created 0700 and must be a directory the user owns that nobody else can
// write to, since anyone who can connect to the socket can run programs in
// the user's sessions.
func RuntimeDir() (string, error) {
	base := os.Getenv("XDG_RUNTIME_DIR")
	dir := filepath.Join(base, "remocal")
	if base == "" {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("remocal-%d", os.Getuid()))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create runtime directory %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("runtime directory %s must be a directory owned by you with mode 0700 (found %v); remove it and retry", dir, fi.Mode())
	}
	return dir, nil
}

// DefaultSocket is where the daemon listens unless told otherwise.
func DefaultSocket() (string, error) {
	dir, err := RuntimeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "daemon.sock"), nil
}
