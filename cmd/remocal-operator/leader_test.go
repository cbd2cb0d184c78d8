package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/procwatch"
)

// TestLeaderElection runs two replicas of remocal-operator on loopback
// against the cluster, electing with a real Lease: one leads and is ready,
// the other is not ready (check "leader") and refuses sessions; when the
// leader stops (SIGTERM, as when its pod is deleted) it releases the Lease
// and the follower leads and is ready within a few seconds, not the
// Lease's duration.
func TestLeaderElection(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	ctx := t.Context()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}}
	readyz := func(port int) (int, string) {
		res, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/readyz?verbose", port))
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
		return res.StatusCode, string(body)
	}
	type replica struct {
		name string
		port int
		p    *procwatch.Proc
	}
	start := func(name string) *replica {
		port := freePort(t)
		cmd := exec.Command(operatorBin(t), "--kubeconfig", c.Kubeconfig, "--bind-address=127.0.0.1",
			"--secure-port="+strconv.Itoa(port), "--cert-dir="+t.TempDir(), "--namespace="+ns, "--metrics-bind-address=127.0.0.1:0",
			"--leader-elect-lease-duration=15s", "--leader-elect-renew-deadline=10s", "--leader-elect-retry-period=2s")
		cmd.Env = append(cleanEnv(t), "POD_NAME="+name)
		r := &replica{name: name, port: port, p: procwatch.Start(t, cmd)}
		r.p.Expect(r.p.Stderr, "serving the operator API")
		return r
	}
	a := start("operator-a")
	if err := poll.Until(ctx, 60*time.Second, func() error {
		if code, body := readyz(a.port); code != http.StatusOK {
			return fmt.Errorf("the first replica's readyz: %d %s", code, body)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b := start("operator-b")
	// b serves its API (its readyz answers) but does not lead.
	if err := poll.Until(ctx, 30*time.Second, func() error {
		code, body := readyz(b.port)
		if code != http.StatusInternalServerError || !strings.Contains(body, "[-]leader failed") || !strings.Contains(body, "[+]front-proxy-ca ok") {
			return fmt.Errorf("the follower's readyz: %d %s", code, body)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	holder := func() string {
		out, err := c.Kubectl(ctx, "-n", ns, "get", "lease", "remocal-operator", "-o", "jsonpath={.spec.holderIdentity}")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	if h := holder(); h != "operator-a" {
		t.Fatalf("the Lease's holder: %q, want operator-a", h)
	}

	// The leader stops: it releases the Lease once its sessions ended,
	// and the follower takes over within the retry period.
	stopped := time.Now()
	if err := a.p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := poll.Until(ctx, 30*time.Second, func() error {
		if code, body := readyz(b.port); code != http.StatusOK {
			return fmt.Errorf("the new leader's readyz: %d %s", code, body)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(stopped)
	t.Logf("the follower led and was ready %v after the leader's SIGTERM", took.Round(10*time.Millisecond))
	if code := a.p.Wait(); code != 0 {
		t.Errorf("the stopped leader exited %d", code)
	}
	// Well under the Lease's duration: the Lease was released, not
	// left to expire.
	if took > 10*time.Second {
		t.Errorf("handover took %v; the stopping leader should release the Lease", took)
	}
	if h := holder(); h != "operator-b" {
		t.Errorf("the Lease's holder after the handover: %q, want operator-b", h)
	}
}
