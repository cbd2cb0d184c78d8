package sessionhost

import (
	"bufio"
	"io"
	"strings"
	"sync"
)

// queue hands values to a consumer in order without ever blocking the
// producer: events come from goroutines that answer a program's system
// call (host side) or from the connection's read loop (daemon side).
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	closed bool
	wake   chan struct{}
}

func newQueue[T any]() *queue[T] { return &queue[T]{wake: make(chan struct{}, 1)} }

// push adds v unless the queue is closed.
func (q *queue[T]) push(v T) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, v)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close makes run return once it has delivered what was pushed before.
func (q *queue[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run calls fn for every value, in order, until the queue is closed and
// empty.
func (q *queue[T]) run(fn func(T)) {
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		for _, v := range items {
			fn(v)
		}
		if closed && len(items) == 0 {
			return
		}
		if len(items) == 0 {
			<-q.wake
		}
	}
}

// tail keeps the last lines of a stream.
type tail struct {
	mu    sync.Mutex
	lines []string
	// fatal is the last line that starts a Go crash report: the stack
	// trace after it says less than the line itself.
	fatal string
}

const tailLines = 50

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
		t.fatal = line
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > tailLines {
		t.lines = t.lines[len(t.lines)-tailLines:]
	}
}

// reason is the line that best explains an exit.
func (t *tail) reason() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fatal != "" {
		return t.fatal
	}
	for i := len(t.lines) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(t.lines[i]); s != "" {
			return s
		}
	}
	return ""
}

// readLines calls fn for each line of r until EOF.
func readLines(r io.Reader, fn func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
	// A line longer than the buffer ends the scan; drain the rest so the
	// writer never blocks.
	io.Copy(io.Discard, r)
}
