package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// waitFor polls check (each try bounded by a few seconds) until it
// succeeds, the timeout passes, or the daemon it depends on dies; the
// error then says what was awaited, the last failure, and the daemon's log.
func waitFor(ctx context.Context, what, daemonName string, timeout time.Duration, check func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(tctx)
		cancel()
		if last == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
		if d, err := loadDaemon(daemonName); err == nil && !d.alive() {
			return fmt.Errorf("waiting for %s: %s exited; the end of %s:\n%s", what, daemonName, d.Log, tailFile(d.Log, 30))
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("timed out after %s waiting for %s: %v", timeout, what, last)
			if d, err := loadDaemon(daemonName); err == nil {
				msg += fmt.Sprintf("\nthe end of %s:\n%s", d.Log, tailFile(d.Log, 30))
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func etcdHealthy(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:"+strconv.Itoa(etcdClientPort)+"/health", nil)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(b, []byte(`"health":"true"`)) {
		return fmt.Errorf("etcd /health: %s", b)
	}
	return nil
}

// adminTLS is the admin's TLS configuration, for the apiserver checks.
func adminTLS() (*tls.Config, error) {
	caPEM, err := os.ReadFile(pkiFile("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(pkiFile("admin.crt"), pkiFile("admin.key"))
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "kubernetes.default.svc"}, nil
}

func apiserverReady(ctx context.Context) error {
	return apiserverReadyAt(ctx, net.JoinHostPort(NodeIP, strconv.Itoa(APIServerPort)))
}

// apiserverReadyAt asks /readyz at addr over a new connection.
func apiserverReadyAt(ctx context.Context, addr string) error {
	cfg, err := adminTLS()
	if err != nil {
		return err
	}
	tr := &http.Transport{TLSClientConfig: cfg, Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/readyz", nil)
	resp, err := (&http.Client{Transport: tr, Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("/readyz at %s: %s: %s", addr, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// lookupVia resolves name with the DNS server at server (a new UDP socket
// per try) and checks that want is among the answers.
func lookupVia(ctx context.Context, server, name, want string) error {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, name)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if a == want {
			return nil
		}
	}
	return fmt.Errorf("%s via %s: got %v, want %s", name, server, addrs, want)
}

// healthy checks a recorded cluster: daemons alive, apiserver ready, node
// Ready.
func healthy(ctx context.Context) error {
	for _, n := range allDaemons {
		d, err := loadDaemon(n)
		if err != nil {
			return fmt.Errorf("%s: no record: %w", n, err)
		}
		if !d.alive() {
			return fmt.Errorf("%s (pid %d) is not running", n, d.PID)
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := apiserverReady(tctx); err != nil {
		return err
	}
	return handle(nil).nodeReady(tctx)
}

func (c *Cluster) nodeReady(ctx context.Context) error {
	out, err := c.Kubectl(ctx, "get", "node", NodeName, "-o", "json")
	if err != nil {
		return err
	}
	var node struct {
		Status struct {
			Conditions []struct{ Type, Status, Reason, Message string }
		}
	}
	if err := json.Unmarshal([]byte(out), &node); err != nil {
		return err
	}
	for _, cd := range node.Status.Conditions {
		if cd.Type == "Ready" {
			if cd.Status == "True" {
				return nil
			}
			return fmt.Errorf("node not Ready: %s: %s", cd.Reason, cd.Message)
		}
	}
	return errors.New("node has no Ready condition yet")
}

// readyPodIP returns the IP of a Ready pod matching selector.
func (c *Cluster) readyPodIP(ctx context.Context, ns, selector string) (string, error) {
	out, err := c.Kubectl(ctx, "-n", ns, "get", "pods", "-l", selector, "-o", "json")
	if err != nil {
		return "", err
	}
	var list struct {
		Items []struct {
			Status struct {
				PodIP      string
				Phase      string
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return "", err
	}
	for _, p := range list.Items {
		for _, cd := range p.Status.Conditions {
			if cd.Type == "Ready" && cd.Status == "True" && p.Status.PodIP != "" {
				return p.Status.PodIP, nil
			}
		}
	}
	return "", fmt.Errorf("no Ready pod with %s in %s yet", selector, ns)
}
