package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/procwatch"
)

func TestMain(m *testing.M) { cluster.Main(m, gobuild.Cleanup) }

// operatorBin is the binary under test.
func operatorBin(t *testing.T) string {
	t.Helper()
	return gobuild.Program(t, gobuild.Operator, gobuild.Options{})
}

// runRemocal runs the operator binary with args to its end.
func runRemocal(t *testing.T, dir string, env []string, args ...string) procwatch.Result {
	t.Helper()
	cmd := exec.Command(operatorBin(t), args...)
	cmd.Dir, cmd.Env = dir, env
	return procwatch.Run(t, cmd)
}

// cleanEnv is the test's environment without a kubeconfig or home, so
// nothing of the machine's own configuration leaks in.
func cleanEnv(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "POD_NAMESPACE=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+t.TempDir())
}

// The flags the Helm chart passes are accepted; outside a pod and without
// --kubeconfig the operator says what it needs.
func TestOperatorFlags(t *testing.T) {
	chart := []string{"--secure-port=8443", "--tls-cert-file=/etc/remocal/tls/tls.crt",
		"--tls-private-key-file=/etc/remocal/tls/tls.key", "--namespace=remocal-system", "--metrics-bind-address=:9090"}
	r := runRemocal(t, t.TempDir(), cleanEnv(t), chart...)
	if r.Code == 0 || !strings.Contains(r.Stderr, "--kubeconfig") {
		t.Errorf("outside a pod: exit %d, %s", r.Code, r.Stderr)
	}
	r = runRemocal(t, t.TempDir(), cleanEnv(t), "--secure-port=8443")
	if r.Code == 0 || !strings.Contains(r.Stderr, "POD_NAMESPACE") {
		t.Errorf("without a namespace: exit %d, %s", r.Code, r.Stderr)
	}
	r = runRemocal(t, t.TempDir(), cleanEnv(t), "--namespace=remocal-system", "--agent-image-pull-policy=Sometimes",
		"--agent-image-pull-secrets=regcred,Not_A_Name")
	for _, want := range []string{`--agent-image-pull-policy "Sometimes" is not a pull policy; use Always, IfNotPresent or Never`,
		`--agent-image-pull-secrets: "Not_A_Name" is not a Secret name`} {
		if r.Code == 0 || !strings.Contains(r.Stderr, want) {
			t.Errorf("bad agent pull options: exit %d, stderr lacks %q:\n%s", r.Code, want, r.Stderr)
		}
	}
}

// TestOperatorAgainstTheCluster runs remocal-operator on loopback with
// the cluster's delegated authentication (the front-proxy configuration it
// publishes, TokenReview) and authorization (SubjectAccessReview against
// real RBAC), and calls it as service accounts with and without a role.
func TestOperatorAgainstTheCluster(t *testing.T) {
	c := cluster.Require(t)
	ns := c.Namespace(t)
	ctx := t.Context()
	if err := c.Apply(ctx, strings.ReplaceAll(`
apiVersion: v1
kind: ServiceAccount
metadata: {namespace: NS, name: alice}
---
apiVersion: v1
kind: ServiceAccount
metadata: {namespace: NS, name: nobody}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {namespace: NS, name: remocal-user}
rules:
- {apiGroups: [operator.remocal.dev], resources: [targets, sessions], verbs: [get, list, watch, delete]}
- {apiGroups: [operator.remocal.dev], resources: [targets/portforward], verbs: [create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {namespace: NS, name: alice}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: remocal-user}
subjects: [{kind: ServiceAccount, name: alice, namespace: NS}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {namespace: NS, name: api}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: api, image: `+cluster.ToolboxImage+`, imagePullPolicy: Never, args: [serve]}]
`, "NS", ns)); err != nil {
		t.Fatal(err)
	}
	token := func(sa string) string {
		out, err := c.Kubectl(ctx, "-n", ns, "create", "token", sa, "--duration=1h")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	alice, nobody := token("alice"), token("nobody")

	port := freePort(t)
	cmd := exec.Command(operatorBin(t), "--kubeconfig", c.Kubeconfig, "--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port), "--cert-dir="+t.TempDir(), "--namespace="+ns, "--metrics-bind-address=127.0.0.1:0")
	cmd.Env = cleanEnv(t)
	p := procwatch.Start(t, cmd)
	p.Expect(p.Stderr, "serving the operator API")
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	api := base + "/apis/" + operator.Group + "/" + operator.Version + "/namespaces/" + ns
	// The operator's certificate is self-signed here: the APIService's
	// caBundle is what authenticates it in a real installation.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}}
	get := func(bearer, url string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		return res.StatusCode, body
	}
	if err := poll.Until(ctx, 60*time.Second, func() error {
		if code, body := get("", base+"/readyz"); code != http.StatusOK {
			return fmt.Errorf("readyz: %d %s", code, body)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// alice sees the Deployment once it is ready, with its pod.
	err := poll.Until(ctx, 90*time.Second, func() error {
		code, body := get(alice, api+"/targets/deployment.api")
		var tg operator.Target
		if code != http.StatusOK || json.Unmarshal(body, &tg) != nil {
			return fmt.Errorf("get deployment.api: %d %s", code, body)
		}
		if !tg.Status.Ready || len(tg.Status.Pods) != 1 || tg.Status.Status != "1/1 ready" {
			return fmt.Errorf("not ready yet: %+v", tg.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(nobody, api+"/targets"); code != http.StatusForbidden || !strings.Contains(string(body), "cannot list resource") {
		t.Errorf("a service account without the role: %d %s", code, body)
	}
	if code, body := get("", api+"/targets"); code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d %s", code, body)
	}
	if code, body := get(alice, api+"/sessions/s-none"); code != http.StatusNotFound {
		t.Errorf("an unknown session: %d %s", code, body)
	}

	// Through the front proxy's identity headers, as the kube-apiserver
	// sends them, with the client certificate it uses.
	pki := filepath.Join(cluster.StateDir, "pki")
	proxyCert, err := tls.LoadX509KeyPair(filepath.Join(pki, "front-proxy-client.crt"), filepath.Join(pki, "front-proxy-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	proxied := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{proxyCert}}}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/targets", nil)
	req.Header.Set("X-Remote-User", "system:serviceaccount:"+ns+":alice")
	req.Header.Set("X-Remote-Group", "system:serviceaccounts")
	if res, err := proxied.Do(req); err != nil {
		t.Error(err)
	} else {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("alice through the front proxy: %s %s", res.Status, body)
		}
	}

	// A session: the connection is upgraded and speaks the wire protocol.
	conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s/targets/deployment.api/portforward HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"+
		"Connection: Upgrade\r\nUpgrade: %s\r\nContent-Length: 0\r\n\r\n", strings.TrimPrefix(api, base), alice, operator.UpgradeProtocol)
	r := bufio.NewReader(conn)
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("portforward: %s", res.Status)
	}
	// The operator speaks as an agent: it answers once the client has
	// said who it is.
	if err := wire.WritePreamble(conn); err != nil {
		t.Fatal(err)
	}
	if err := wire.WriteMessage(conn, 0, &wire.Hello{Protocol: wire.Current, Client: wire.ClientInfo{Name: "alice@test"},
		Capabilities: wire.AllCapabilities, Nonce: wire.NewNonce()}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := wire.ReadPreamble(r); err != nil {
		t.Errorf("after the upgrade and a hello: %v", err)
	}
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
