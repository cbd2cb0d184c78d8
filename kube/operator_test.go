package kube

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/yamux"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/wire"
)

// fakeAPIServer stands in for the kube-apiserver with the operator's API
// behind it: a TLS server (offering HTTP/2, which the upgrade must not
// use) that serves discovery and the portforward upgrade as the test
// says. It is the unit-test seam beside the operator e2e on the cluster.
type fakeAPIServer struct {
	t  *testing.T
	ts *httptest.Server
	// discovery is the status of GET OperatorAPIPath.
	discovery int
	// portforward answers an upgrade request; nil hijacks and calls
	// upgraded.
	portforward func(w http.ResponseWriter, r *http.Request) bool
	// upgraded serves the connection after the 101 was written (with
	// early, bytes sent in the same write as the response).
	early    string
	upgraded func(conn net.Conn, r *bufio.Reader)

	mu       sync.Mutex
	requests []*http.Request
	wg       sync.WaitGroup
}

func newFakeAPIServer(t *testing.T) *fakeAPIServer {
	f := &fakeAPIServer{t: t, discovery: http.StatusOK}
	f.ts = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.ts.EnableHTTP2 = true
	f.ts.TLS = &tls.Config{ClientAuth: tls.RequestClientCert, NextProtos: []string{"h2", "http/1.1"}}
	f.ts.StartTLS()
	t.Cleanup(func() {
		f.ts.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeAPIServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.mu.Unlock()
	if r.Method == http.MethodGet && r.URL.Path == OperatorAPIPath {
		if f.discovery != http.StatusOK {
			writeStatus(w, f.discovery, metav1.StatusReasonServiceUnavailable, "service unavailable", nil)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"kind":"APIResourceList","apiVersion":"v1","groupVersion":%q,"resources":[]}`, operator.SchemeGroupVersion.String())
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == OperatorAPIPath+"/namespaces/shop/targets" {
		b, err := os.ReadFile("../protocol/testdata/operator/target-list.json")
		if err != nil {
			f.t.Error(err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/"+operator.SubresourcePortForward) {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource", nil)
		return
	}
	if f.portforward != nil && f.portforward(w, r) {
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		f.t.Errorf("hijack: %v", err)
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer conn.Close()
		resp := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + operator.UpgradeProtocol + "\r\n\r\n" + f.early
		if _, err := conn.Write([]byte(resp)); err != nil {
			return
		}
		if f.upgraded != nil {
			f.upgraded(conn, brw.Reader)
		}
	}()
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string, details *metav1.StatusDetails) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Code: int32(code), Reason: reason, Message: msg, Details: details})
}

func (f *fakeAPIServer) lastRequest() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

// env loads a kubeconfig pointing at the server with the given user
// section, as a user's would.
func (f *fakeAPIServer) env(t *testing.T, user string) *Env {
	t.Helper()
	env, err := Load(Flags{Kubeconfig: f.kubeconfig(t, user)})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// kubeconfig writes a kubeconfig for the server and returns its path.
func (f *fakeAPIServer) kubeconfig(t *testing.T, user string) string {
	t.Helper()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ts.Certificate().Raw})
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: u
  user: %s
contexts:
- name: dev
  context: {cluster: c, user: u, namespace: shop}
`, f.ts.URL, base64.StdEncoding.EncodeToString(ca), user)
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func tokenUser() string { return `{token: "alice-token"}` }

// certUser makes a client certificate for CN alice and returns the
// kubeconfig user section that holds it.
func certUser(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "alice", Organization: []string{"dev"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kpem := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	return fmt.Sprintf("{client-certificate-data: %s, client-key-data: %s}",
		base64.StdEncoding.EncodeToString(cert), base64.StdEncoding.EncodeToString(kpem))
}

func TestDetectOperator(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   error
		say    string
	}{
		{http.StatusOK, nil, ""},
		{http.StatusNotFound, ErrNoOperator, "no remocal operator"},
		{http.StatusServiceUnavailable, ErrOperatorUnavailable, "installed but unavailable (HTTP 503: service unavailable)"},
		{http.StatusInternalServerError, ErrOperatorUnavailable, "installed but unavailable (HTTP 500"},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			f := newFakeAPIServer(t)
			f.discovery = tc.status
			err := DetectOperator(context.Background(), f.env(t, tokenUser()))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("DetectOperator = %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.say) {
				t.Fatalf("DetectOperator = %v; want errors.Is %v and a message with %q", err, tc.want, tc.say)
			}
		})
	}
	// A cluster nobody answers for is neither: the caller must not fall
	// back as if there were no operator.
	f := newFakeAPIServer(t)
	env := f.env(t, tokenUser())
	f.ts.Close()
	err := DetectOperator(context.Background(), env)
	if err == nil || errors.Is(err, ErrNoOperator) || errors.Is(err, ErrOperatorUnavailable) {
		t.Fatalf("DetectOperator of an unreachable cluster = %v", err)
	}
}

// The upgrade request goes to the portforward subresource with the
// upgrade headers over HTTP/1.1 and the kubeconfig's credentials, and the
// bytes the server sent right behind its 101 reach the caller.
func TestDialOperatorUpgrades(t *testing.T) {
	for name, user := range map[string]string{"token": tokenUser(), "client certificate": certUser(t)} {
		t.Run(name, func(t *testing.T) {
			f := newFakeAPIServer(t)
			f.early = "early bytes|"
			f.upgraded = func(conn net.Conn, r *bufio.Reader) {
				// Echo what the client sends after the upgrade.
				io.Copy(conn, r)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := DialOperator(ctx, f.env(t, user), "shop", "deployment.api", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len("early bytes|ping"))
			if _, err := io.ReadFull(conn, got); err != nil || string(got) != "early bytes|ping" {
				t.Fatalf("read %q, %v; want the early bytes then the echo", got, err)
			}
			r := f.lastRequest()
			if want := "/apis/operator.remocal.dev/v1alpha1/namespaces/shop/targets/deployment.api/portforward"; r.Method != http.MethodPost || r.URL.Path != want {
				t.Errorf("request %s %s; want POST %s", r.Method, r.URL.Path, want)
			}
			if r.ProtoMajor != 1 || r.TLS.NegotiatedProtocol != "http/1.1" {
				t.Errorf("request over %s, ALPN %q; want HTTP/1.1", r.Proto, r.TLS.NegotiatedProtocol)
			}
			if !strings.EqualFold(r.Header.Get("Connection"), "Upgrade") || r.Header.Get("Upgrade") != operator.UpgradeProtocol {
				t.Errorf("headers Connection %q Upgrade %q", r.Header.Get("Connection"), r.Header.Get("Upgrade"))
			}
			switch name {
			case "token":
				if got := r.Header.Get("Authorization"); got != "Bearer alice-token" {
					t.Errorf("Authorization %q; want the kubeconfig's bearer token", got)
				}
			default:
				if certs := r.TLS.PeerCertificates; len(certs) == 0 || certs[0].Subject.CommonName != "alice" {
					t.Errorf("client certificates %v; want the kubeconfig's (CN alice)", certs)
				}
			}
		})
	}
}

func TestDialOperatorRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request) bool
		is     func(error) bool
		say    []string
	}{
		{"forbidden", func(w http.ResponseWriter, r *http.Request) bool {
			writeStatus(w, http.StatusForbidden, metav1.StatusReasonForbidden,
				`targets.operator.remocal.dev "deployment.api" is forbidden: User "bob" cannot create resource "targets/portforward"`,
				&metav1.StatusDetails{Name: "deployment.api", Group: operator.Group, Kind: "targets"})
			return true
		}, apierrors.IsForbidden, []string{"may not create targets/portforward in namespace shop", "remocal-user ClusterRole", `User "bob"`}},
		{"no such target", func(w http.ResponseWriter, r *http.Request) bool {
			writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, `targets.operator.remocal.dev "deployment.api" not found`,
				&metav1.StatusDetails{Name: "deployment.api", Group: operator.Group, Kind: "targets"})
			return true
		}, func(err error) bool { return apierrors.IsNotFound(err) && errors.Is(err, connect.ErrTargetNotFound) },
			[]string{"no target deployment.api in namespace shop", "remocal ls -n shop"}},
		{"no such API", func(w http.ResponseWriter, r *http.Request) bool {
			writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource", nil)
			return true
		}, func(err error) bool { return apierrors.IsNotFound(err) && !errors.Is(err, connect.ErrTargetNotFound) },
			[]string{"does not serve targets/portforward"}},
		{"not a Kubernetes status", func(w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "bad gateway from a proxy", http.StatusBadGateway)
			return true
		}, func(err error) bool { var r *OperatorRefusedError; return errors.As(err, &r) },
			[]string{"HTTP 502", "bad gateway from a proxy"}},
		{"200 instead of the upgrade", func(w http.ResponseWriter, r *http.Request) bool {
			w.WriteHeader(http.StatusOK)
			return true
		}, func(err error) bool { return errors.Is(err, ErrNotUpgraded) }, []string{"may not pass HTTP upgrades on"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPIServer(t)
			f.portforward = tc.answer
			_, err := DialOperator(context.Background(), f.env(t, tokenUser()), "shop", "deployment.api", nil)
			if err == nil || !tc.is(err) {
				t.Fatalf("DialOperator = %v (%T); not classified as %s", err, err, tc.name)
			}
			for _, s := range tc.say {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q lacks %q", err, s)
				}
			}
		})
	}
}

// fakeOperator plays the operator's side of the wire handshake on an
// upgraded connection and records each hello.
type fakeOperator struct {
	mu     sync.Mutex
	hellos []*wire.Hello
	conns  []net.Conn
}

func (o *fakeOperator) serve(conn net.Conn, r *bufio.Reader) {
	if err := wire.ReadPreamble(r); err != nil {
		return
	}
	hello, err := wire.ReadMessage[*wire.Hello](r, wire.MaxHandshakeFrameSize)
	if err != nil {
		return
	}
	o.mu.Lock()
	o.hellos = append(o.hellos, hello)
	o.conns = append(o.conns, conn)
	o.mu.Unlock()
	session := hello.Client.Session
	if session == "" {
		session = "s-0123456789"
	}
	wire.WritePreamble(conn)
	wire.WriteMessage(conn, 0, &wire.Welcome{Protocol: wire.Current, Agent: wire.AgentInfo{Version: "op"},
		Capabilities: append(append([]wire.Capability{}, wire.AllCapabilities...), wire.CapOperator), ClientID: "c1",
		Operator: &wire.OperatorInfo{Session: session, Pods: []string{"api-1", "api-2"}, Primary: "api-1", PrimaryReason: "oldest ready pod"}})
	mux, err := yamux.Server(readerConn{conn, r}, wire.MuxConfig())
	if err != nil {
		return
	}
	defer mux.Close()
	for {
		s, err := mux.AcceptStream()
		if err != nil {
			return
		}
		defer s.Close()
	}
}

type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// The operator connector opens a session without a name, learns the
// operator's, and resumes it by that name when the connection drops.
func TestOperatorConnectorResumesItsSession(t *testing.T) {
	f := newFakeAPIServer(t)
	op := &fakeOperator{}
	f.upgraded = op.serve
	var progress []string
	k := &OperatorConnector{Ref: "deployment/api/container/app", Env: f.env(t, tokenUser()),
		Progress: func(s string) { progress = append(progress, s) }}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The fake operator answers no pings: no heartbeat during the test.
	c, release, err := k.Connect(ctx, agentclient.Options{Name: "alice@laptop", Session: "client-chosen", Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if r := f.lastRequest(); r.URL.Path != PortForwardPath("shop", "deployment.api") || r.URL.Query().Get("container") != "app" {
		t.Errorf("request %s; want the target deployment.api with container=app", r.URL)
	}
	if k.Session() != "s-0123456789" || !strings.Contains(k.Describe(), "s-0123456789") {
		t.Errorf("session %q, Describe %q", k.Session(), k.Describe())
	}
	if len(progress) != 1 || !strings.Contains(progress[0], "from api-1 (oldest ready pod)") {
		t.Errorf("progress %q", progress)
	}
	// The connection drops (the operator's pod restarted).
	op.mu.Lock()
	op.conns[0].Close()
	op.mu.Unlock()
	<-c.Done()
	release()
	c2, release2, err := k.Redial(ctx, agentclient.Options{Name: "alice@laptop", Session: "client-chosen", Heartbeat: time.Hour}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	release2()
	_ = c2
	op.mu.Lock()
	defer op.mu.Unlock()
	if h := op.hellos[0].Client; h.Tool != "remocal" || h.Host == "" {
		t.Errorf("hello client %+v; want the host name and the tool", h)
	}
	if len(op.hellos) != 2 || op.hellos[0].Client.Session != "" || op.hellos[1].Client.Session != "s-0123456789" {
		t.Errorf("hello sessions %q, %q; want none, then the operator's", op.hellos[0].Client.Session, op.hellos[len(op.hellos)-1].Client.Session)
	}
}

// auto goes direct, saying why, when the cluster has no operator; true
// refuses; a target the operator cannot serve goes direct under auto.
func TestChoosingConnector(t *testing.T) {
	f := newFakeAPIServer(t)
	f.discovery = http.StatusNotFound
	path := f.kubeconfig(t, tokenUser())
	choose := func(mode config.OperatorMode, ref string) (connect.Connector, []string, error) {
		var said []string
		c := &choosingConnector{ref: ref, mode: mode, flags: Flags{Kubeconfig: path}, direct: &Connector{Ref: ref},
			progress: func(s string) { said = append(said, s) }, detect: DetectOperator}
		k, err := c.choose(context.Background())
		return k, said, err
	}
	k, said, err := choose(config.OperatorAuto, "deployment/api")
	if _, direct := k.(*Connector); err != nil || !direct || len(said) != 1 ||
		!strings.HasPrefix(said[0], "no operator in this cluster (") || !strings.HasSuffix(said[0], "; connecting directly") {
		t.Errorf("auto without an operator: %T, %v, said %q", k, err, said)
	}
	if _, _, err := choose(config.OperatorAlways, "deployment/api"); !errors.Is(err, ErrNoOperator) || !strings.Contains(err.Error(), "--operator") {
		t.Errorf("true without an operator: %v", err)
	}
	if k, said, err := choose(config.OperatorAuto, "targetless"); k == nil || err != nil || len(said) != 0 {
		t.Errorf("auto, targetless: %T, %v, said %q", k, err, said)
	}
	if _, _, err := choose(config.OperatorAlways, "selector/app=api"); !errors.Is(err, ErrOperatorCannotServe) {
		t.Errorf("true, a selector: %v", err)
	}
	f.discovery = http.StatusOK
	if k, said, err := choose(config.OperatorAuto, "deployment/api"); err != nil || len(said) != 0 {
		t.Errorf("auto with an operator: %v, said %q", err, said)
	} else if _, ok := k.(*OperatorConnector); !ok {
		t.Errorf("auto with an operator chose %T", k)
	}
}

// remocal ls through the operator: its targets in the form of a direct
// listing, filtered by kind.
func TestOperatorTargets(t *testing.T) {
	f := newFakeAPIServer(t)
	env := f.env(t, tokenUser())
	got, err := OperatorTargets(context.Background(), env, "", false)
	if err != nil {
		t.Fatal(err)
	}
	want := []daemon.Target{{Ref: "deployment/inventory", Kind: "deployment", Name: "inventory", Namespace: "shop", Provider: Provider,
		Ready: true, Status: "2/3 ready", Containers: []string{"inventory", "migrate"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("OperatorTargets (-want +got):\n%s", diff)
	}
	if got, err := OperatorTargets(context.Background(), env, "", false, config.TargetPod); err != nil || len(got) != 0 {
		t.Errorf("pods only: %v, %v", got, err)
	}
}

// A server that never answers the upgrade is given up on when the
// context ends.
func TestDialOperatorGivesUpWithTheContext(t *testing.T) {
	f := newFakeAPIServer(t)
	release := make(chan struct{})
	defer close(release)
	f.portforward = func(w http.ResponseWriter, r *http.Request) bool {
		<-release // never answers while the client waits
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := DialOperator(ctx, f.env(t, tokenUser()), "shop", "deployment.api", nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("DialOperator = %v after %v; want the context's deadline, promptly", err, time.Since(start))
	}
}
