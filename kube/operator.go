package kube

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/transport"

	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/protocol/operator"
)

// OperatorAPIPath is the discovery document of the operator's API group
// version; the kube-apiserver serves it only while the APIService is
// registered.
const OperatorAPIPath = "/apis/" + operator.Group + "/" + operator.Version

// ErrNoOperator says the cluster has no operator: its API group is not
// registered (the kube-apiserver answered 404).
var ErrNoOperator = errors.New("no remocal operator in this cluster")

// ErrOperatorUnavailable says the operator's API is registered but does
// not answer (503 from the aggregator: its pods are not ready, its Service
// has no endpoints), or answered the discovery request with another error.
var ErrOperatorUnavailable = errors.New("the remocal operator is unavailable")

// OperatorError is what DetectOperator found when the operator is not
// usable: errors.Is matches ErrNoOperator or ErrOperatorUnavailable.
type OperatorError struct {
	// Absent: the API group is not registered; otherwise it is registered
	// and failing.
	Absent bool
	// Status is the HTTP status of the discovery request, Message what
	// the kube-apiserver said.
	Status  int
	Message string
	Context string // the kubeconfig context asked
}

func (e *OperatorError) Error() string {
	if e.Absent {
		return fmt.Sprintf("no remocal operator in the cluster of context %q (the API %s/%s is not registered); an administrator installs it with the Helm chart charts/remocal (docs/operator.md)",
			e.Context, operator.Group, operator.Version)
	}
	msg := fmt.Sprintf("the remocal operator in the cluster of context %q is installed but unavailable (HTTP %d", e.Context, e.Status)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg + "); check it with: kubectl get apiservice " + operator.APIServiceName +
		" and kubectl get pods -A -l app.kubernetes.io/name=remocal-operator"
}

func (e *OperatorError) Is(target error) bool {
	return (e.Absent && target == ErrNoOperator) || (!e.Absent && target == ErrOperatorUnavailable)
}

// maxStatusBody bounds what is read of an error response.
const maxStatusBody = 64 << 10

// DetectOperator asks the kube-apiserver for the operator's API group with
// the user's credentials: nil means the operator is present and answers;
// an *OperatorError says it is absent or unavailable; any other error is
// a failure to reach the cluster at all.
func DetectOperator(ctx context.Context, env *Env) error {
	var code int
	res := env.Client.Discovery().RESTClient().Get().AbsPath(OperatorAPIPath).Do(ctx).StatusCode(&code)
	err := res.Error()
	switch {
	case err == nil && code == http.StatusOK:
		return nil
	case code == http.StatusNotFound:
		return &OperatorError{Absent: true, Status: code, Context: env.Context}
	case code != 0:
		return &OperatorError{Status: code, Message: statusMessage(err), Context: env.Context}
	}
	return fmt.Errorf("ask the cluster of context %q for the remocal operator: %w", env.Context, err)
}

// statusMessage is the kube-apiserver's message in err, if it sent one.
func statusMessage(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return se.Status().Message
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// PortForwardPath is the URL path of a session stream to a target.
func PortForwardPath(namespace, target string) string {
	return OperatorAPIPath + "/namespaces/" + url.PathEscape(namespace) + "/" + operator.ResourceTargets + "/" +
		url.PathEscape(target) + "/" + operator.SubresourcePortForward
}

// OperatorRefusedError is a portforward request the kube-apiserver or the
// operator answered with something other than the upgrade. It wraps the
// Kubernetes status (apierrors.IsForbidden, IsNotFound ... work on it);
// a missing target also matches connect.ErrTargetNotFound.
type OperatorRefusedError struct {
	Namespace, Target string
	Status            *apierrors.StatusError
}

func (e *OperatorRefusedError) Error() string {
	st := e.Status.Status()
	where := fmt.Sprintf("target %s in namespace %s", e.Target, e.Namespace)
	switch {
	case apierrors.IsForbidden(e.Status):
		return fmt.Sprintf("the cluster refused to connect you to %s: you may not create %s/%s in namespace %s (%s); ask your administrator to bind the remocal-user ClusterRole to you in that namespace",
			where, operator.ResourceTargets, operator.SubresourcePortForward, e.Namespace, st.Message)
	case apierrors.IsUnauthorized(e.Status):
		return fmt.Sprintf("the cluster did not accept your credentials connecting to %s (%s); log in again (kubectl get --raw %s shows the same)",
			where, st.Message, OperatorAPIPath)
	case e.targetMissing():
		return fmt.Sprintf("no %s: the operator knows no such target (%s); list them with: remocal ls -n %s",
			where, st.Message, e.Namespace)
	case apierrors.IsNotFound(e.Status):
		return fmt.Sprintf("connecting to %s: the operator's API does not serve %s/%s (%s); is the operator older than this client?",
			where, operator.ResourceTargets, operator.SubresourcePortForward, st.Message)
	}
	return fmt.Sprintf("connecting to %s through the operator: HTTP %d %s: %s", where, st.Code, st.Reason, st.Message)
}

func (e *OperatorRefusedError) Unwrap() error { return e.Status }

// targetMissing tells "no such target" from "no such API": the operator's
// NotFound names the target object; the kube-apiserver's names nothing.
func (e *OperatorRefusedError) targetMissing() bool {
	d := e.Status.Status().Details
	return apierrors.IsNotFound(e.Status) && d != nil && d.Name != ""
}

func (e *OperatorRefusedError) Is(target error) bool {
	return target == connect.ErrTargetNotFound && e.targetMissing()
}

// ErrNotUpgraded says a 2xx answer came instead of the upgrade: something
// between the client and the operator does not pass upgrades on.
var ErrNotUpgraded = errors.New("the connection was not upgraded")

// operatorHandshakeTimeout bounds the upgrade request when ctx does not.
const operatorHandshakeTimeout = 30 * time.Second

// DialOperator opens a session stream to a target through the
// kube-apiserver: an HTTP/1.1 upgrade to operator.UpgradeProtocol on the
// target's portforward subresource, authenticated with the kubeconfig's
// credentials of every kind (client certificates, bearer tokens, exec
// plugins, impersonation), as client-go's own transport would send them.
// After the 101 the connection carries protocol/wire; bytes that arrived
// with the response are read first.
func DialOperator(ctx context.Context, env *Env, namespace, target string, query url.Values) (net.Conn, error) {
	u, err := url.Parse(env.Config.Host)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("the kubeconfig's server %q is not a URL", env.Config.Host)
	}
	if u.Scheme == "" {
		u.Scheme = "https"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + PortForwardPath(namespace, target)
	u.RawQuery = query.Encode()
	tcfg, err := env.Config.TransportConfig()
	if err != nil {
		return nil, fmt.Errorf("the kubeconfig's credentials: %w", err)
	}
	up := &upgrader{tcfg: tcfg, dial: env.Config.Dial}
	rt, err := transport.HTTPWrappersForConfig(tcfg, up)
	if err != nil {
		return nil, fmt.Errorf("the kubeconfig's credentials: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, operatorHandshakeTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", operator.UpgradeProtocol)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("connect to target %s in namespace %s through the operator: %w", target, namespace, err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if !strings.EqualFold(resp.Header.Get("Upgrade"), operator.UpgradeProtocol) {
			up.conn.Close()
			return nil, fmt.Errorf("connect to target %s in namespace %s: the server upgraded to %q, not %q",
				target, namespace, resp.Header.Get("Upgrade"), operator.UpgradeProtocol)
		}
		return &bufferedConn{Conn: up.conn, r: up.br}, nil
	}
	defer up.conn.Close()
	return nil, refusal(resp, namespace, target)
}

// refusal turns a response other than 101 into an error.
func refusal(resp *http.Response, namespace, target string) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxStatusBody))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return fmt.Errorf("connect to target %s in namespace %s: %w (HTTP %d); a proxy between you and the cluster may not pass HTTP upgrades on",
			target, namespace, ErrNotUpgraded, resp.StatusCode)
	}
	var st metav1.Status
	if json.Unmarshal(body, &st) != nil || st.Kind != "Status" {
		// Not a Kubernetes status (a proxy's page): keep what it said.
		st = metav1.Status{Status: metav1.StatusFailure, Code: int32(resp.StatusCode),
			Reason: reasonForCode(resp.StatusCode), Message: strings.TrimSpace(string(body))}
	}
	if st.Code == 0 {
		st.Code = int32(resp.StatusCode)
	}
	return &OperatorRefusedError{Namespace: namespace, Target: target, Status: &apierrors.StatusError{ErrStatus: st}}
}

func reasonForCode(code int) metav1.StatusReason {
	switch code {
	case http.StatusUnauthorized:
		return metav1.StatusReasonUnauthorized
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusNotFound:
		return metav1.StatusReasonNotFound
	case http.StatusServiceUnavailable:
		return metav1.StatusReasonServiceUnavailable
	}
	return metav1.StatusReasonUnknown
}

// upgrader is the innermost round tripper under client-go's credential
// wrappers: it dials the kube-apiserver itself (TLS with the kubeconfig's
// CA and client certificate, HTTP/1.1 only, since upgrades do not exist in
// HTTP/2), writes the request and reads the response, keeping the
// connection and its reader for the upgraded stream.
type upgrader struct {
	tcfg *transport.Config
	dial func(ctx context.Context, network, address string) (net.Conn, error)
	conn net.Conn
	br   *bufio.Reader
}

func (u *upgrader) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	conn, err := u.connect(ctx, req.URL)
	if err != nil {
		return nil, err
	}
	// The context bounds the handshake; the stream outlives it.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	err = req.Write(conn)
	var resp *http.Response
	br := bufio.NewReader(conn)
	if err == nil {
		resp, err = http.ReadResponse(br, req)
	}
	if !stop() {
		// The context ended: the deadline is (being) set in the past,
		// whatever was read.
		conn.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	u.conn, u.br = conn, br
	return resp, nil
}

// connect dials the server of u, with TLS for https.
func (u *upgrader) connect(ctx context.Context, target *url.URL) (net.Conn, error) {
	host := target.Host
	if target.Port() == "" {
		if target.Scheme == "http" {
			host = net.JoinHostPort(target.Hostname(), "80")
		} else {
			host = net.JoinHostPort(target.Hostname(), "443")
		}
	}
	dial := u.dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	raw, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if target.Scheme == "http" {
		return raw, nil
	}
	tlsCfg, err := transport.TLSConfigFor(u.tcfg)
	if err != nil {
		raw.Close()
		return nil, err
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	tlsCfg = tlsCfg.Clone()
	tlsCfg.NextProtos = []string{"http/1.1"}
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = target.Hostname()
	}
	conn := tls.Client(raw, tlsCfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// bufferedConn is the upgraded connection: reads drain what the response
// reader already holds (bytes the server sent right after the 101) first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}
