package splittest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/operator/internal/queuesplit"
	qs "github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/test/envtest"
)

// RouterEnv, set in a test binary's environment, makes its TestMain run a
// router (RouterProcess) instead of the tests: the router a test
// SIGKILLs, as the kernel kills a crashed operator.
const RouterEnv = "REMOCAL_QUEUESPLIT_ROUTER"

// Main is a broker's test binary's TestMain: the router process when
// RouterEnv says so, the tests in their own network namespace otherwise.
func Main(m *testing.M, open func(addr string) (queuesplit.Broker, error)) {
	if spec := os.Getenv(RouterEnv); spec != "" {
		os.Exit(RouterProcess(spec, open))
	}
	envtest.Main(m)
}

// routerSpec is what the test passes to the router process.
type routerSpec struct {
	Addr     string              `json:"addr"`
	Sessions map[string]qs.Split `json:"sessions"`
}

// RouterProcess runs a router on the broker open returns for the address
// in spec, with spec's sessions, until the process is killed; it prints
// "routing" once routing. It returns the process's exit code.
func RouterProcess(spec string, open func(addr string) (queuesplit.Broker, error)) int {
	var s routerSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "router process:", err)
		return 2
	}
	ctx := context.Background()
	b, err := open(s.Addr)
	if err == nil {
		var r *queuesplit.Router
		if r, err = queuesplit.New(ctx, b, queuesplit.Options{Batch: 50, Wait: 100 * time.Millisecond}); err == nil {
			for id, sp := range s.Sessions {
				if _, err = r.AddSession(ctx, id, sp); err != nil {
					break
				}
			}
			if err == nil {
				fmt.Println("routing")
				err = r.Run(ctx)
			}
		}
	}
	fmt.Fprintln(os.Stderr, "router process:", err)
	return 1
}

// routerProc is a router running in a child process.
type routerProc struct {
	cmd *exec.Cmd
}

// startRouterProcess runs the test binary as a router with sessions and
// waits until it routes.
func startRouterProcess(t testing.TB, h Harness, sessions map[string]qs.Split) *routerProc {
	t.Helper()
	spec, err := json.Marshal(routerSpec{Addr: h.Addr(), Sessions: sessions})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), RouterEnv+"="+string(spec))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	errOut := &tail{}
	cmd.Stderr = errOut
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &routerProc{cmd: cmd}
	t.Cleanup(func() { p.kill(t) })
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "routing" {
				ready <- nil
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		ready <- fmt.Errorf("the router process ended before routing: %s", errOut.String())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the router process did not start routing in 60 s: %s", errOut.String())
	}
	return p
}

// kill SIGKILLs the router wherever it is.
func (p *routerProc) kill(t testing.TB) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.cmd = nil
}
