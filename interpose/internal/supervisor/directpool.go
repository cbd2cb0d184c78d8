package supervisor

import (
	"sync"

	"golang.org/x/sys/unix"
)

// targetSockets makes TCP sockets in the target's namespace ahead of
// need. Making one there means handing the work to the namespace's thread
// and waiting for it to wake up (35–85 µs measured on a busy machine),
// which a connect should not wait for; an idle socket costs a descriptor
// and a few hundred bytes of kernel memory.
type targetSockets struct {
	s        *Supervisor
	tn       TargetNetwork
	families map[int]*socketPool // AF_INET, AF_INET6; never changes
}

type socketPool struct {
	once  sync.Once
	ready chan int
	// defaults are a new socket's options in the target's namespace,
	// against which a program's socket's are compared (copyOptions).
	defaults *options
	err      error
}

const socketsAhead = 4

func newTargetSockets(s *Supervisor, tn TargetNetwork) *targetSockets {
	t := &targetSockets{s: s, tn: tn, families: map[int]*socketPool{}}
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		t.families[f] = &socketPool{ready: make(chan int, socketsAhead)}
	}
	return t
}

func (t *targetSockets) make(family int) (int, error) {
	var fd int
	err := t.tn.Do(func() (err error) {
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		return err
	})
	return fd, err
}

// take returns a new non-blocking, close-on-exec TCP socket of family in
// the target's namespace, and that namespace's default options. The
// first call for a family starts making sockets ahead.
func (t *targetSockets) take(family int) (int, *options, error) {
	p := t.families[family]
	p.once.Do(func() {
		fd, err := t.make(family)
		if err != nil {
			p.err = err
			return
		}
		p.defaults = readOptions(fd, family)
		unix.Close(fd)
		t.s.wg.Go(func() { t.fill(p, family) })
	})
	if p.err != nil {
		return -1, nil, p.err
	}
	select {
	case fd := <-p.ready:
		return fd, p.defaults, nil
	default: // taken faster than made: make one now
	}
	fd, err := t.make(family)
	return fd, p.defaults, err
}

// fill keeps p.ready full until the supervisor stops. On an error
// (descriptors exhausted) it stops: take makes sockets itself then.
func (t *targetSockets) fill(p *socketPool, family int) {
	for t.s.ctx.Err() == nil {
		fd, err := t.make(family)
		if err != nil {
			t.s.log.Debug("making sockets in the target ahead stopped", "err", err)
			return
		}
		select {
		case p.ready <- fd:
		case <-t.s.ctx.Done():
			unix.Close(fd)
			return
		}
	}
}

// close closes the sockets made ahead, once fill has returned.
func (t *targetSockets) close() {
	for _, p := range t.families {
		for len(p.ready) > 0 {
			unix.Close(<-p.ready)
		}
	}
}
