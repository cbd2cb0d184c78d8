package targets

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/remocal/remocal/protocol/daemon"
)

// LocalNamespace holds this machine's processes.
const LocalNamespace = "local"

// Local lists this machine's processes as pid/ targets. It rescans /proc
// every interval in the background and reports changes in the set of
// processes; listing answers from the last scan.
type Local struct {
	interval time.Duration
	proc     string

	mu      sync.Mutex
	targets []daemon.Target

	changed chan daemon.TargetsChanged
	stop    chan struct{}
	done    chan struct{}
}

// NewLocal scans once and starts rescanning.
func NewLocal(interval time.Duration) *Local {
	l := &Local{interval: interval, proc: "/proc", changed: make(chan daemon.TargetsChanged, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	l.targets = l.scan()
	go l.run()
	return l
}

func (l *Local) Name() string { return "local" }

func (l *Local) Namespaces() []daemon.Namespace {
	return []daemon.Namespace{{Name: LocalNamespace, Provider: l.Name()}}
}

func (l *Local) Targets() []daemon.Target {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.targets
}

func (l *Local) Changed() <-chan daemon.TargetsChanged { return l.changed }

func (l *Local) Close() error {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	return nil
}

func (l *Local) run() {
	defer close(l.done)
	defer close(l.changed)
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		next := l.scan()
		l.mu.Lock()
		same := slices.EqualFunc(l.targets, next, func(a, b daemon.Target) bool { return a.Ref == b.Ref })
		l.targets = next
		l.mu.Unlock()
		if !same {
			select {
			case l.changed <- daemon.TargetsChanged{Provider: l.Name(), Namespace: LocalNamespace}:
			default:
			}
		}
	}
}

// scan lists user processes (kernel threads have no command line).
func (l *Local) scan() []daemon.Target {
	entries, err := os.ReadDir(l.proc)
	if err != nil {
		return nil
	}
	out := []daemon.Target{}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(l.proc, e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
		desc := string(bytes.Join(args, []byte{' '}))
		if len(desc) > 200 {
			desc = desc[:200] + "…"
		}
		out = append(out, daemon.Target{
			Ref: fmt.Sprintf("pid/%d", pid), Kind: "pid", Name: filepath.Base(string(args[0])),
			Namespace: LocalNamespace, Provider: l.Name(), Ready: true, Description: desc,
		})
	}
	slices.SortFunc(out, func(a, b daemon.Target) int { return pidOf(a) - pidOf(b) })
	return out
}

func pidOf(t daemon.Target) int {
	n, _ := strconv.Atoi(t.Ref[len("pid/"):])
	return n
}
