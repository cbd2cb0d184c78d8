package agent_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/gobuild"
	"github.com/remocal/remocal/test/procwatch"
)

// These tests run real grpc-go programs (test/grpcecho): the application's
// gRPC server in the app pod, the developers' local servers here, and the
// calling client in the peer pod, all over HTTP/2 on one port the agent
// routes stream by stream.

const grpcPort = 9090

var grpcAddr = fmt.Sprintf("%s:%d", localenv.AppIP, grpcPort)

// grpcResult is test/grpcecho's callResult.
type grpcResult struct {
	Call     int      `json:"call"`
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

func grpcecho(t testing.TB) string {
	t.Helper()
	return gobuild.Program(t, "github.com/remocal/remocal/test/grpcecho", gobuild.Options{})
}

// inPod runs argv inside pod's network namespace.
func inPod(t testing.TB, pod *localenv.Pod, argv ...string) *exec.Cmd {
	t.Helper()
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	return exec.Command(ip, append([]string{"netns", "exec", pod.NetNSName}, argv...)...)
}

// grpcServer is a running grpcecho server; it prints a line per call it
// receives.
type grpcServer struct {
	addr string
	p    *procwatch.Proc
}

// startGRPCApp runs the application's gRPC server in the app pod.
func startGRPCApp(t *testing.T, env *localenv.Env) *grpcServer {
	t.Helper()
	p := procwatch.Start(t, inPod(t, env.App, grpcecho(t), "serve", "-listen", fmt.Sprintf(":%d", grpcPort), "-name", "app"))
	p.Expect(p.Stdout, "listening")
	return &grpcServer{addr: grpcAddr, p: p}
}

// startGRPCLocal runs a developer's gRPC server on this side's loopback.
func startGRPCLocal(t *testing.T, name string, extra ...string) *grpcServer {
	t.Helper()
	p := procwatch.Start(t, exec.Command(grpcecho(t), append([]string{"serve", "-name", name}, extra...)...))
	line := p.Expect(p.Stdout, "listening ")
	return &grpcServer{addr: strings.TrimPrefix(line[strings.Index(line, "listening "):], "listening "), p: p}
}

// grpcCalls makes the calls (grpcecho's -calls) at once on one connection
// from pod to the app's gRPC port.
func grpcCalls(t *testing.T, pod *localenv.Pod, calls string) []grpcResult {
	t.Helper()
	res := procwatch.Run(t, inPod(t, pod, grpcecho(t), "call", "-addr", grpcAddr, "-calls", calls))
	if res.Code != 0 {
		t.Fatalf("grpcecho call exited %d: %s", res.Code, res.Stderr)
	}
	var out []grpcResult
	sc := bufio.NewScanner(strings.NewReader(res.Stdout))
	for sc.Scan() {
		var r grpcResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("grpcecho output %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func userFilter(user string) *wire.HTTPFilter {
	return &wire.HTTPFilter{Headers: map[string]string{"X-User": user}}
}

// wantServed checks who answered a call, in its header and its trailer,
// with status OK.
func wantServed(t *testing.T, r grpcResult, by string) {
	t.Helper()
	if r.Code != "OK" || r.Header != by || r.Trailer != by {
		t.Errorf("call %d (%s user %q): code %s %q, header by %q, trailer by %q; want OK from %q", r.Call, r.Kind, r.User, r.Code, r.Message, r.Header, r.Trailer, by)
	}
}

// Two developers steal the same gRPC port with different metadata: on one
// connection whose calls run at once, each gets only its calls, the rest
// reach the application, and statuses, trailers and streams arrive whole.
func TestGRPCStealByMetadata(t *testing.T) {
	env := envtest.New(t)
	startGRPCApp(t, env)
	addr := startAgent(t, env.App, agentOptions{}).addr
	for _, name := range []string{"alice", "bob"} {
		local := startGRPCLocal(t, "local-"+name)
		c := connect(t, addr, name+"@laptop")
		subscribe(t, c, wire.Subscribe{Port: grpcPort, Mode: wire.ModeSteal, Filter: userFilter(name)}, agentclient.ForwardTo(local.addr))
	}
	results := grpcCalls(t, env.Peer, strings.Join([]string{
		"unary:alice:a", "unary:bob:b", "unary::c", "unary:carol:d",
		"stream:alice:64", "stream:carol:64", "bidi:bob:5", "unary:alice:fail",
	}, ";"))
	if len(results) != 8 {
		t.Fatalf("got %d results, want 8", len(results))
	}
	wantServed(t, results[0], "local-alice")
	wantServed(t, results[1], "local-bob")
	wantServed(t, results[2], "app")
	wantServed(t, results[3], "app")
	for _, i := range []int{4, 5} {
		by := map[int]string{4: "local-alice", 5: "app"}[i]
		wantServed(t, results[i], by)
		if r := results[i]; r.Received != 64 || r.Corrupt {
			t.Errorf("stream from %s: received %d chunks (corrupt: %v), want 64 intact", by, r.Received, r.Corrupt)
		}
	}
	wantServed(t, results[6], "local-bob")
	if got := strings.Join(results[6].Replies, ","); got != "local-bob: m0,local-bob: m1,local-bob: m2,local-bob: m3,local-bob: m4" {
		t.Errorf("bidi replies %q", got)
	}
	if r := results[7]; r.Code != "PermissionDenied" || r.Message != "local-alice refuses" || r.Trailer != "local-alice" {
		t.Errorf("failing call: code %s %q, trailer by %q; want PermissionDenied from local-alice with its trailer", r.Code, r.Message, r.Trailer)
	}
}

// A filtered mirror gets a copy of the matching calls while the
// application answers them.
func TestGRPCFilteredMirror(t *testing.T) {
	env := envtest.New(t)
	startGRPCApp(t, env)
	local := startGRPCLocal(t, "local-alice")
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	subscribe(t, c, wire.Subscribe{Port: grpcPort, Mode: wire.ModeMirror, Filter: userFilter("alice")}, agentclient.ForwardTo(local.addr))

	results := grpcCalls(t, env.Peer, "unary:bob:b;bidi:alice:3;unary:alice:a")
	for _, r := range results {
		wantServed(t, r, "app")
	}
	// The copies come in any order; bob's call must not be among them,
	// nor arrive before alice's marker call that follows.
	got := map[string]bool{}
	for range 2 {
		got[local.p.Expect(local.p.Stdout, "call ")] = true
	}
	if !got["call /remocal.test.Echo/Bidi user=alice"] || !got["call /remocal.test.Echo/Unary user=alice"] {
		t.Errorf("the mirror got %v, want alice's two calls", got)
	}
	grpcCalls(t, env.Peer, "unary:alice:marker")
	if line := local.p.Expect(local.p.Stdout, "call "); line != "call /remocal.test.Echo/Unary user=alice" {
		t.Errorf("after alice's calls the mirror got %q, want only the marker", line)
	}
}

// Kubelet gRPC probes (from the node) stay with the application under a
// steal, filtered or not; other calls from the node are stolen.
func TestGRPCProbesAreNotStolen(t *testing.T) {
	for _, filter := range []*wire.HTTPFilter{nil, {Path: "/.*"}} {
		t.Run(fmt.Sprintf("filter=%v", filter), func(t *testing.T) {
			env := envtest.New(t)
			startGRPCApp(t, env)
			local := startGRPCLocal(t, "local-alice", "-not-serving")
			c := connect(t, startAgent(t, env.App, agentOptions{nodeAddrs: []netip.Addr{localenv.PeerIP}}).addr, "alice@laptop")
			subscribe(t, c, wire.Subscribe{Port: grpcPort, Mode: wire.ModeSteal, Filter: filter}, agentclient.ForwardTo(local.addr))

			results := grpcCalls(t, env.Peer, "health::;unary::x")
			if r := results[0]; r.Code != "OK" || strings.Join(r.Replies, "") != "SERVING" {
				t.Errorf("health check from the node: %s %q %v; want SERVING from the application", r.Code, r.Message, r.Replies)
			}
			wantServed(t, results[1], "local-alice")
			// From another pod the health service is stolen like any call.
			if r := grpcCalls(t, env.Redis, "health::")[0]; strings.Join(r.Replies, "") != "NOT_SERVING" {
				t.Errorf("health check from another pod: %s %v; want NOT_SERVING from the stealing laptop", r.Code, r.Replies)
			}
		})
	}
}
