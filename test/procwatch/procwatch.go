// Package procwatch runs a command for a test and lets it wait for lines
// of its output: "the session says it is stealing port 8080", then act.
// Waiting on output the program prints when it is ready is what replaces
// sleeps in the end-to-end tests.
package procwatch

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Patience bounds every wait on a program: long enough for a cold agent
// in a cluster, short enough that a hang fails the test with a message.
const Patience = 60 * time.Second

// Proc is a running command whose output is read line by line.
type Proc struct {
	t   testing.TB
	Cmd *exec.Cmd
	// Stdin is the command's standard input.
	Stdin io.WriteCloser
	// Stdout and Stderr carry the output's lines; they are closed at EOF.
	Stdout, Stderr chan string

	done chan struct{}
	code int

	mu  sync.Mutex
	log []string
}

// Start starts cmd in a process group of its own. When the test ends the
// group is killed and the output is logged.
func Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{t: t, Cmd: cmd, Stdout: make(chan string, 1000), Stderr: make(chan string, 1000), done: make(chan struct{})}
	var err error
	if p.Stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	// Plain pipes rather than exec's copying goroutines: processes the
	// command leaves behind (a keeper, a program's background child) may
	// keep the write ends open, and the exit status must not wait for them.
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	errW.Close()
	var readers sync.WaitGroup
	for _, s := range []struct {
		r    *os.File
		ch   chan string
		name string
	}{{outR, p.Stdout, "stdout"}, {errR, p.Stderr, "stderr"}} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer close(s.ch)
			defer s.r.Close()
			sc := bufio.NewScanner(s.r)
			for sc.Scan() {
				line := sc.Text()
				p.mu.Lock()
				p.log = append(p.log, s.name+": "+line)
				p.mu.Unlock()
				select {
				case s.ch <- line:
				default: // nobody waits for this much output; the log has it
				}
			}
		}()
	}
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		readers.Wait()
		t.Logf("output of %v:\n%s", cmd.Args, strings.Join(p.Lines(), "\n"))
	})
	return p
}

// Expect waits for a line containing want on ch (p.Stdout or p.Stderr)
// and returns it.
func (p *Proc) Expect(ch chan string, want string) string {
	p.t.Helper()
	timeout := time.NewTimer(Patience)
	defer timeout.Stop()
	for {
		select {
		case line, ok := <-ch:
			if !ok {
				p.t.Fatalf("output of %v ended without %q", p.Cmd.Args, want)
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-timeout.C:
			p.t.Fatalf("no line with %q from %v within %v", want, p.Cmd.Args, Patience)
		}
	}
}

// Wait returns the exit status.
func (p *Proc) Wait() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(Patience):
		p.t.Fatalf("%v did not exit within %v", p.Cmd.Args, Patience)
		return -1
	}
}

// Lines is the output so far, each line prefixed with its stream.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

// Result is how a command that ran to completion ended.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Run runs cmd to completion in a process group of its own and logs its
// output. A command still running after Patience has its group killed and
// fails the test; so does one that cannot start. Children it leaves
// behind holding its output (a keeper) delay the result by at most five
// seconds.
func Run(t testing.TB, cmd *exec.Cmd) Result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	var overran atomic.Bool
	timer := time.AfterFunc(Patience, func() {
		overran.Store(true)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	err := cmd.Wait()
	timer.Stop()
	r := Result{Code: cmd.ProcessState.ExitCode(), Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case overran.Load():
		t.Fatalf("%v did not finish within %v\nstdout:\n%s\nstderr:\n%s", cmd.Args, Patience, r.Stdout, r.Stderr)
	case err == nil, errors.As(err, &ee), errors.Is(err, exec.ErrWaitDelay):
	default:
		t.Fatalf("run %v: %v", cmd.Args, err)
	}
	t.Logf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", cmd.Args, r.Code, r.Stdout, r.Stderr)
	return r
}
