package netns

import (
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Thread is one OS thread that stays inside a namespace and runs work
// handed to it: cheaper than Do when work arrives often (a socket per
// outgoing connection), since it enters the namespace once instead of
// twice per call. Its goroutine exits still locked when the thread
// closes, so the runtime discards the thread rather than reuse it outside.
type Thread struct {
	work chan func()
	once sync.Once
	done chan struct{}
}

// Thread starts a thread inside the namespace. Close ends it.
func (n *NS) Thread() (*Thread, error) {
	t := &Thread{work: make(chan func()), done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		defer close(t.done)
		runtime.LockOSThread()
		// Never unlocked: see the type's doc.
		if err := unix.Setns(n.Fd(), unix.CLONE_NEWNET); err != nil {
			started <- fmt.Errorf("enter network namespace %s: %w", n.Path(), err)
			return
		}
		started <- nil
		for fn := range t.work {
			fn()
		}
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return t, nil
}

// Do runs fn on the thread and returns its error. It must not be called
// after Close.
func (t *Thread) Do(fn func() error) error {
	errc := make(chan error, 1)
	t.work <- func() { errc <- fn() }
	return <-errc
}

// Close ends the thread once the work handed to it is done.
func (t *Thread) Close() error {
	t.once.Do(func() { close(t.work) })
	<-t.done
	return nil
}
