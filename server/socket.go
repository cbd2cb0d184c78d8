package server

import (
	"path/filepath"

	"github.com/remocal/remocal/interpose/connect"
)

// RuntimeDir is the per-user directory of remocal's sockets (see
// connect.RuntimeDir).
func RuntimeDir() (string, error) { return connect.RuntimeDir() }

// DefaultSocket is where the daemon listens unless told otherwise.
func DefaultSocket() (string, error) {
	dir, err := RuntimeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "daemon.sock"), nil
}
