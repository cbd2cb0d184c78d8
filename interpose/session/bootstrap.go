package session

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/remocal/remocal/interpose/internal/handoff"
	"github.com/remocal/remocal/interpose/internal/supervisor"
	"github.com/remocal/remocal/protocol/daemon"
)

// SocketEnv names the session socket for the bootstrap library, which a
// program started outside remocal (by a debugger, an IDE) loads with
// LD_PRELOAD: its constructor connects there, receives the filter and hands
// back the listener, and from then on the program is supervised like one
// started by `remocal exec`.
const SocketEnv = "REMOCAL_SESSION_SOCKET"

// ServeBootstrap accepts bootstrap connections on a unix socket at path
// (created 0600) until the session closes. Each connecting process gets its
// own supervisor and keeper.
func (s *Session) ServeBootstrap(path string) error {
	os.Remove(path)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("listen for programs joining the session: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return err
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	s.wg.Go(func() {
		for {
			conn, err := l.AcceptUnix()
			if err != nil {
				return
			}
			s.wg.Go(func() {
				defer conn.Close()
				if err := s.adopt(conn); err != nil {
					msg := fmt.Sprintf("a program could not join the session: %v", err)
					fmt.Fprintf(s.opts.Stderr, "remocal: %s\n", msg)
					if s.opts.OnEvent != nil {
						s.opts.OnEvent(supervisor.Event{Kind: daemon.EventWarning, Message: msg, Err: err})
					}
				}
			})
		}
	})
	return nil
}

// adopt supervises the process at the other end of conn. With
// TransparentFirst, the first process that joins stays transparent.
func (s *Session) adopt(conn *net.UnixConn) error {
	res, err := handoff.Offer(conn, s.filter(), handoffTimeout)
	if err != nil {
		return err
	}
	transparent := 0
	s.mu.Lock()
	if s.opts.TransparentFirst && !s.joined {
		// SO_PEERCRED of a connected socket names the process that
		// connected: the one that installed the filter.
		transparent = res.PID
	}
	s.joined = true
	s.mu.Unlock()
	sup, err := s.newSupervisor("", transparent)
	if err != nil {
		res.Listener.Close()
		return err
	}
	release, table, err := startKeeper(s.opts.Self, res.Listener)
	if err != nil {
		res.Listener.Close()
		return err
	}
	s.mu.Lock()
	s.keepers = append(s.keepers, release)
	s.mu.Unlock()
	sup.Serve(res.Listener, table)
	return nil
}

// BootstrapEnv returns what a program needs in its environment to join the
// session: the session's computed environment, the library preloaded and
// the socket. library is the path of the bootstrap library on disk.
func (s *Session) BootstrapEnv(local []string, library, socket string) ([]string, error) {
	if library == "" || socket == "" {
		return nil, errors.New("bootstrap needs the library path and the session socket")
	}
	preload := []string{library}
	var env []string
	// One entry each: getenv reads the first of duplicates, so a socket
	// left from another session (or an empty LD_PRELOAD) would win.
	for _, kv := range s.Environ(local) {
		if v, ok := cutPrefix(kv, "LD_PRELOAD="); ok {
			for _, lib := range strings.Split(v, ":") {
				if lib != "" && lib != library {
					preload = append(preload, lib)
				}
			}
			continue
		}
		if _, ok := cutPrefix(kv, SocketEnv+"="); ok {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LD_PRELOAD="+strings.Join(preload, ":"), SocketEnv+"="+socket), nil
}
