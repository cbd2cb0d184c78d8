package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remocal/remocal/test/poll"
)

// EnvVar selects how tests get a cluster:
//
//	unset       tests that call Require skip (plain `go test ./...` never builds Kubernetes)
//	existing    use the running cluster (make cluster-up first); never tear it down
//	up          bring one up if none is running (building on first use); tear it
//	            down after the tests only if this test binary brought it up
//	keep        like up, but leave it running
const EnvVar = "REMOCAL_CLUSTER"

var shared struct {
	once    sync.Once
	c       *Cluster
	err     error
	started bool
}

// Require returns the test cluster, or skips the test when REMOCAL_CLUSTER
// is unset. Every test of a test binary shares one cluster.
func Require(tb testing.TB) *Cluster {
	tb.Helper()
	mode := os.Getenv(EnvVar)
	if mode == "" {
		tb.Skipf("needs the test cluster: set %s=existing (after make cluster-up) or %s=up (as root); see docs/cluster.md", EnvVar, EnvVar)
	}
	shared.once.Do(func() {
		ctx := context.Background()
		switch mode {
		case "existing":
			shared.c, shared.err = Attach(ctx)
		case "up", "keep":
			if os.Geteuid() != 0 {
				shared.err = fmt.Errorf("%s=%s needs root", EnvVar, mode)
				return
			}
			running := Running(ctx)
			shared.c, shared.err = Up(ctx, func(f string, a ...any) { fmt.Fprintf(os.Stderr, "cluster: "+f+"\n", a...) })
			shared.started = shared.err == nil && !running
		default:
			shared.err = fmt.Errorf("%s=%q: want existing, up or keep", EnvVar, mode)
		}
	})
	if shared.err != nil {
		tb.Fatalf("test cluster: %v", shared.err)
	}
	return shared.c
}

// Main runs the tests and, with REMOCAL_CLUSTER=up, tears the cluster down
// afterwards if this test binary brought it up. Call it from TestMain. Each
// after function runs once the tests are done, before the teardown.
func Main(m *testing.M, after ...func()) {
	code := m.Run()
	for _, f := range after {
		f()
	}
	if shared.started && os.Getenv(EnvVar) == "up" {
		if err := Down(context.Background(), func(f string, a ...any) { fmt.Fprintf(os.Stderr, "cluster: "+f+"\n", a...) }); err != nil {
			fmt.Fprintln(os.Stderr, "cluster-down after the tests:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// Namespace creates a namespace for one test and deletes it when the test
// ends (in the background: the next test does not wait for it).
func (c *Cluster) Namespace(tb testing.TB) string {
	tb.Helper()
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(tb.Name(), "-"))
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.Trim(name, "-") + "-" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if _, err := c.Kubectl(ctx, "create", "namespace", name); err != nil {
		tb.Fatal(err)
	}
	// Pods need the namespace's default service account.
	if err := poll.Until(ctx, 30*time.Second, func() error {
		_, err := c.Kubectl(ctx, "-n", name, "get", "serviceaccount", "default", "-o", "name")
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			c.dumpNamespace(tb, name)
		}
		if _, err := c.Kubectl(ctx, "delete", "namespace", name, "--wait=false"); err != nil {
			tb.Logf("deleting namespace %s: %v", name, err)
		}
	})
	return name
}

// dumpNamespace logs a failed test's pods, events and logs.
func (c *Cluster) dumpNamespace(tb testing.TB, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"-n", ns, "get", "pods,svc,jobs,endpointslices", "-o", "wide"},
		{"-n", ns, "get", "events", "--sort-by=.lastTimestamp"},
		{"-n", ns, "logs", "--all-containers", "--prefix", "-l", "remocal-test", "--tail=50"},
	} {
		out, err := c.Kubectl(ctx, args...)
		tb.Logf("kubectl %s:\n%s%v", strings.Join(args, " "), out, errOrEmpty(err))
	}
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// WaitPod waits until the pod's condition holds ("Ready", or "complete"
// for a pod that must end with success), saying why not on timeout.
func (c *Cluster) WaitPod(ctx context.Context, ns, pod, condition string, timeout time.Duration) error {
	var arg string
	switch condition {
	case "complete":
		arg = "--for=jsonpath={.status.phase}=Succeeded"
	default:
		arg = "--for=condition=" + condition
	}
	if _, err := c.Kubectl(ctx, "-n", ns, "wait", "pod/"+pod, arg, "--timeout="+timeout.String()); err != nil {
		desc, _ := c.Kubectl(ctx, "-n", ns, "describe", "pod", pod)
		return fmt.Errorf("%w\n%s", err, desc)
	}
	return nil
}

// PortForward runs `kubectl port-forward` to target (pod/NAME, svc/NAME,
// ...) in ns and returns the local address once it is listening; the
// forward stops when ctx ends or stop is called.
func (c *Cluster) PortForward(ctx context.Context, ns, target string, remotePort int) (addr string, stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	cmd := c.KubectlCmd(ctx, "-n", ns, "port-forward", "--address", "127.0.0.1", target, fmt.Sprintf(":%d", remotePort))
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return "", nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		return "", nil, err
	}
	stop = func() { cancel(); _ = cmd.Wait() }
	re := regexp.MustCompile(`Forwarding from (127\.0\.0\.1:\d+) ->`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, out)
		if !sent {
			close(found)
		}
	}()
	select {
	case a, ok := <-found:
		if !ok {
			stop()
			return "", nil, fmt.Errorf("kubectl port-forward %s ended: %s", target, stderr.String())
		}
		return a, stop, nil
	case <-time.After(30 * time.Second):
		stop()
		return "", nil, fmt.Errorf("kubectl port-forward %s: not listening after 30s: %s", target, stderr.String())
	}
}
