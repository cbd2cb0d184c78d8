package apiserver

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/test/poll"
)

// testServer is the real generic API server on loopback, with the real
// front-proxy (request header) authentication trusting a CA made for the
// test, and the fake RBAC as its authorizer.
type testServer struct {
	base     string
	roots    *x509.CertPool
	proxy    tls.Certificate // the front proxy's client certificate
	stranger tls.Certificate // a client certificate of another CA
	targets  *fakeTargets
	sessions *fakeSessions
	broker   *echoBroker
	// stop stops the server and returns what Run returned.
	stop func() error
	// follower makes the server a follower (not the leader) while set;
	// otherLeader names the leader then.
	follower    atomic.Bool
	otherLeader atomic.Pointer[string]
}

var rules = rbac{
	"alice": {"list targets", "get targets", "create targets/portforward", "get targets/portforward",
		"list sessions", "watch sessions", "get sessions", "delete sessions", "deletecollection sessions", "get operatorstatuses", "list operatorstatuses"},
	"bob":   {"list sessions", "delete sessions", "deletecollection sessions"},
	"admin": {"list sessions", "delete sessions", "deletecollection sessions", "kill sessions"},
	"eve":   {"list targets"},
}

var started = metav1.NewTime(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))

func session(ns, name, owner, target string) operator.Session {
	return operator.Session{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       operator.SessionSpec{User: operator.UserInfo{Username: owner}, Client: operator.ClientInfo{Name: owner + "@laptop"}, Target: target},
		Status:     operator.SessionStatus{Phase: operator.PhaseActive, StartTime: started, LastHeartbeat: started},
	}
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	return startServerWith(t, 0, 0)
}

// startServerWith starts the server with a request timeout and an
// in-flight limit (0: the generic server's).
func startServerWith(t *testing.T, requestTimeout time.Duration, maxInFlight int) *testServer {
	t.Helper()
	dir := t.TempDir()
	proxyCA, proxyKey := newCA(t, "front-proxy-ca")
	writePEM(t, filepath.Join(dir, "front-proxy-ca.crt"), "CERTIFICATE", proxyCA.Raw)
	otherCA, otherKey := newCA(t, "other-ca")
	ts := &testServer{
		proxy:    clientCert(t, proxyCA, proxyKey, "front-proxy-client"),
		stranger: clientCert(t, otherCA, otherKey, "front-proxy-client"),
		sessions: &fakeSessions{},
		broker:   &echoBroker{},
	}
	ts.sessions.add(session("shop", "s-alice1", "alice", "deployment.inventory"))
	ts.sessions.add(session("shop", "s-bob1", "bob", "deployment.inventory"))
	ts.sessions.add(session("shop", "s-bob2", "bob", "pod.orders-1"))

	o := NewOptions()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.SecureServing.Listener = ln
	o.SecureServing.BindPort = ln.Addr().(*net.TCPAddr).Port
	o.SecureServing.ServerCert.CertDirectory = dir
	a := o.Authentication
	a.RemoteKubeConfigFileOptional = true // no cluster: no TokenReview
	a.RequestHeader.ClientCAFile = filepath.Join(dir, "front-proxy-ca.crt")
	a.RequestHeader.AllowedNames = []string{"front-proxy-client"}
	a.RequestHeader.UsernameHeaders = []string{"X-Remote-User"}
	a.RequestHeader.GroupHeaders = []string{"X-Remote-Group"}
	a.RequestHeader.ExtraHeaderPrefixes = []string{"X-Remote-Extra-"}
	o.Authorization.RemoteKubeConfigFileOptional = true

	ts.targets = &fakeTargets{release: make(chan struct{}), items: []operator.Target{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "deployment.inventory"},
			Spec:   operator.TargetSpec{Kind: "deployment", Name: "inventory", Containers: []string{"inventory"}},
			Status: operator.TargetStatus{Ready: true, Status: "2/2 ready", Pods: []string{"inventory-a", "inventory-b"}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "pod.orders-1"},
			Spec:   operator.TargetSpec{Kind: "pod", Name: "orders-1"},
			Status: operator.TargetStatus{Ready: false, Status: "Pending"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "service.web"},
			Spec: operator.TargetSpec{Kind: "service", Name: "web"}},
	}}
	backendAuthz := &Authorizer{}
	srv, err := New(Config{Options: o, Version: "test", Targets: ts.targets, Sessions: ts.sessions, Broker: ts.broker,
		Status: fakeStatus{}, Authorizer: rules, BackendAuthorizer: backendAuthz, Leading: ts.leading, requestTimeout: requestTimeout, maxInFlight: maxInFlight})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	ts.stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		close(ts.targets.release)
		if err := ts.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	// The generated serving certificate (and its CA) is in the cert dir.
	crt, err := os.ReadFile(filepath.Join(dir, "remocal-operator.crt"))
	if err != nil {
		t.Fatal(err)
	}
	ts.roots = x509.NewCertPool()
	if !ts.roots.AppendCertsFromPEM(crt) {
		t.Fatal("no certificate in the generated serving certificate file")
	}
	ts.base = "https://" + ln.Addr().String()
	err = poll.Until(context.Background(), 30*time.Second, func() error {
		res, err := ts.client(tls.Certificate{}).Get(ts.base + "/readyz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", res.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := backendAuthz.Allowed(ctx, operator.UserInfo{Username: "admin"}, operator.VerbKill, "shop", operator.ResourceSessions, "", ""); !ok || err != nil {
		t.Errorf("backend authorizer: admin may kill sessions: %v, %v", ok, err)
	}
	if ok, err := backendAuthz.Allowed(ctx, operator.UserInfo{Username: "bob"}, operator.VerbKill, "shop", operator.ResourceSessions, "", ""); ok || err != nil {
		t.Errorf("backend authorizer: bob may not kill sessions: %v, %v", ok, err)
	}
	return ts
}

// leading is the server's Config.Leading.
func (ts *testServer) leading() (bool, string) {
	if !ts.follower.Load() {
		return true, "self"
	}
	if l := ts.otherLeader.Load(); l != nil {
		return false, *l
	}
	return false, ""
}

// client speaks HTTP/1.1 over TLS with cert as its client certificate.
func (ts *testServer) client(cert tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: ts.roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	if cert.Certificate != nil {
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: false}, Timeout: 30 * time.Second}
}

// do sends a request as user (through the front proxy), decodes a 2xx
// answer into out and returns the status code; the body on errors.
func (ts *testServer) do(t *testing.T, method, user, path string, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Remote-User", user)
	req.Header.Add("X-Remote-Group", "developers")
	res, err := ts.client(ts.proxy).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, body, err)
		}
	}
	return res.StatusCode, string(body)
}

const api = "/apis/" + operator.Group + "/" + operator.Version

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func clientCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// dialUpgrade sends a portforward request by hand and returns the
// connection with the response head read.
func (ts *testServer) dialUpgrade(t *testing.T, method, user, path string, upgrade bool) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	cfg := &tls.Config{RootCAs: ts.roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}, Certificates: []tls.Certificate{ts.proxy}}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(ts.base, "https://"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req, err := http.NewRequest(method, ts.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Remote-User", user)
	req.Header.Add("X-Remote-Group", "developers")
	if upgrade {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", operator.UpgradeProtocol)
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	res, err := http.ReadResponse(r, req)
	if err != nil {
		t.Fatal(err)
	}
	return conn, r, res
}
