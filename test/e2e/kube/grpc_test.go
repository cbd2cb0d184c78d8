package kube

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/poll"
)

// grpcEchoManifest is test/grpcecho serving as the application behind a
// ClusterIP Service, with a kubelet gRPC readiness probe every second.
const grpcEchoManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: grpc-echo
spec:
  replicas: 1
  selector:
    matchLabels: {app: grpc-echo}
  template:
    metadata:
      labels: {app: grpc-echo}
    spec:
      containers:
      - name: grpc-echo
        args: ["serve", "-listen", ":9090", "-name", "app"]
        ports: [{containerPort: 9090}]
        readinessProbe:
          grpc: {port: 9090}
          periodSeconds: 1
        image: remocal.local/test/grpcecho:dev
---
apiVersion: v1
kind: Service
metadata:
  name: grpc-echo
spec:
  selector: {app: grpc-echo}
  ports: [{port: 9090, targetPort: 9090}]
`

// grpcCall is test/grpcecho's callResult.
type grpcCall struct {
	Kind     string   `json:"kind"`
	User     string   `json:"user"`
	Header   string   `json:"header"`
	Trailer  string   `json:"trailer"`
	Code     string   `json:"code"`
	Message  string   `json:"message"`
	Replies  []string `json:"replies"`
	Received int      `json:"received"`
	Corrupt  bool     `json:"corrupt"`
}

func (f *fixture) deployGRPCEcho() podInfo {
	f.t.Helper()
	f.apply(grpcEchoManifest)
	f.rollout("deployment/grpc-echo")
	return f.pods("app=grpc-echo")[0]
}

// grpcEcho is test/grpcecho built for the laptop.
func (f *fixture) grpcEcho() string {
	return gobuild.Program(f.t, "github.com/remocal/remocal/test/grpcecho", gobuild.Options{Static: true})
}

var grpcClients atomic.Int64

// grpcCalls runs grpcecho's calls (its -calls) at once on one connection
// from a pod of the namespace to addr, and returns their results.
func (f *fixture) grpcCalls(addr, calls string) []grpcCall {
	f.t.Helper()
	name := fmt.Sprintf("grpc-client-%d", grpcClients.Add(1))
	f.apply(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  restartPolicy: Never
  containers:
  - name: call
    args: ["call", "-addr", %q, "-calls", %q]
    image: remocal.local/test/grpcecho:dev
`, name, addr, calls))
	err := poll.Until(f.ctx(), 90*time.Second, func() error {
		if phase := f.kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}"); phase != "Succeeded" {
			if phase == "Failed" {
				f.t.Fatalf("the gRPC client pod failed: %s", f.kubectl("logs", name))
			}
			return fmt.Errorf("client pod %s", phase)
		}
		return nil
	})
	if err != nil {
		f.t.Fatalf("the gRPC client did not finish: %v", err)
	}
	var out []grpcCall
	sc := bufio.NewScanner(strings.NewReader(f.kubectl("logs", name)))
	for sc.Scan() {
		var c grpcCall
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			f.t.Fatalf("gRPC client output %q: %v", sc.Text(), err)
		}
		out = append(out, c)
	}
	return out
}

// gRPC through a ClusterIP Service: calls whose metadata match the
// laptop's filter are answered on the laptop (status and trailers
// included, streams intact), the others by the pod, on one connection.
func TestGRPCThroughService(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(`{"network": {"incoming": {"mode": "steal", "httpFilter": {"headers": {"X-User": "me"}}}}}`)
	f.deployGRPCEcho()
	r := f.start("deployment/grpc-echo", nil, f.grpcEcho(), "serve", "-listen", ":9090", "-name", "laptop")
	r.Expect(r.Stderr, `stealing port 9090 of the target where header X-User="me"`)

	calls := f.grpcCalls("grpc-echo:9090", "unary:me:a;unary:other:b;unary::c;stream:me:32;bidi:me:4;unary:me:fail")
	if len(calls) != 6 {
		t.Fatalf("got %d results, want 6: %+v", len(calls), calls)
	}
	for i, by := range []string{"laptop", "app", "app", "laptop", "laptop"} {
		if c := calls[i]; c.Code != "OK" || c.Header != by || c.Trailer != by {
			t.Errorf("%s call of %q: %s %q, header by %q, trailer by %q; want OK from %s", c.Kind, c.User, c.Code, c.Message, c.Header, c.Trailer, by)
		}
	}
	if c := calls[3]; c.Received != 32 || c.Corrupt {
		t.Errorf("stolen stream: %d chunks (corrupt %v), want 32 intact", c.Received, c.Corrupt)
	}
	if c := calls[5]; c.Code != "PermissionDenied" || c.Trailer != "laptop" {
		t.Errorf("failing call: %s %q, trailer by %q; want PermissionDenied from the laptop", c.Code, c.Message, c.Trailer)
	}
	r.Expect(r.Stdout, "call /remocal.test.Echo/Bidi user=me")
}

// Under an unfiltered steal of the gRPC port, the kubelet's gRPC probes
// keep reaching the pod; calls from other pods reach the laptop.
func TestGRPCProbesStayWithThePod(t *testing.T) {
	f := newFixture(t)
	pod := f.deployGRPCEcho()
	r := f.start("deployment/grpc-echo", []string{"--steal"}, f.grpcEcho(), "serve", "-listen", ":9090", "-name", "laptop", "-not-serving")
	r.Expect(r.Stderr, "stealing port 9090")
	if c := f.grpcCalls(pod.ip+":9090", "unary:x:y")[0]; c.Header != "laptop" {
		t.Fatalf("a call from another pod was answered by %q, want the laptop", c.Header)
	}
	checks := func() int { return strings.Count(f.kubectl("logs", pod.name), "call /grpc.health.v1.Health/Check") }
	before := checks()
	err := poll.Until(f.ctx(), 30*time.Second, func() error {
		if n := checks() - before; n < 2 {
			return fmt.Errorf("%d kubelet gRPC probes reached the pod since the steal began", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the kubelet's gRPC probes do not reach the pod while its port is stolen: %v", err)
	}
	if ready := f.kubectl("get", "pod", pod.name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`); ready != "True" {
		t.Errorf("the pod is not ready (%q) while its gRPC port is stolen", ready)
	}
	for _, line := range r.Lines() {
		if strings.Contains(line, "grpc.health.v1.Health/Check") {
			t.Errorf("the laptop received a kubelet probe: %s", line)
		}
	}
}
