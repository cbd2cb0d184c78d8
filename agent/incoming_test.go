package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/poll"
)

// localServer stands for the developer's local process: it answers
// "local <name> <path>" and reports every request it gets.
type localServer struct {
	*httptest.Server
	got chan *http.Request
}

func newLocalServer(t testing.TB, name string) *localServer {
	t.Helper()
	ls := &localServer{got: make(chan *http.Request, 64)}
	ls.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if ls.got != nil {
			ls.got <- r
		}
		w.Header().Set("X-Served-By", "local-"+name)
		fmt.Fprintf(w, "local %s %s", name, r.URL.Path)
	}))
	t.Cleanup(ls.Close)
	return ls
}

func (ls *localServer) forwarder() *agentclient.Forwarder {
	return agentclient.ForwardTo(strings.TrimPrefix(ls.URL, "http://"))
}

// next waits for the next request the local server receives.
func (ls *localServer) next(t *testing.T) *http.Request {
	t.Helper()
	select {
	case r := <-ls.got:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the local server received nothing")
		return nil
	}
}

// markerHeader tells none's marker request from the requests under test.
const markerHeader = "X-Test-Marker"

var markers atomic.Int64

// none proves the local server received nothing beyond what the test took
// with next. Finding nothing queued would prove nothing: a request (a
// mirrored copy above all) may still be on its way. So send sends a marker
// request, carrying marker's header, that must reach the local server the
// way the unwanted ones would have come and after them; none waits for it,
// and anything that arrives before it fails the test.
//
// Stolen requests are answered by the local server before their response
// comes back, so for them the order is certain. Mirrored copies are
// delivered each by a goroutine the agent starts before it relays the
// request, so an unwanted copy would have a head start of the whole
// exchange with the application; a copy overtaken by the marker would go
// unnoticed, but a correct agent can never fail the check.
func (ls *localServer) none(t *testing.T, send func(marker http.Header)) {
	t.Helper()
	id := fmt.Sprint(markers.Add(1))
	send(hdr(markerHeader, id))
	if r := ls.next(t); r.Header.Get(markerHeader) != id {
		t.Fatalf("the local server unexpectedly received %s %s (headers %v) before the marker request", r.Method, r.URL, r.Header)
	}
}

func subscribe(t *testing.T, c *agentclient.Client, spec wire.Subscribe, h agentclient.Handler) *agentclient.Subscription {
	t.Helper()
	s, err := c.Subscribe(testCtx(t), spec, h)
	if err != nil {
		t.Fatalf("subscribe %+v: %v", spec, err)
	}
	return s
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func assertFromApp(t *testing.T, env *localenv.Env, path string, header http.Header) {
	t.Helper()
	status, body, by := get(t, env, path, header)
	if status != 200 || by != env.App.Hostname {
		t.Fatalf("GET %s %v: status %d, served by %q (%q); want the application %q", path, header, status, by, body, env.App.Hostname)
	}
}

func assertFromLocal(t *testing.T, env *localenv.Env, path string, header http.Header, name string) {
	t.Helper()
	status, body, by := get(t, env, path, header)
	if status != 200 || by != "local-"+name || body != "local "+name+" "+path {
		t.Fatalf("GET %s %v: status %d, served by %q (%q); want local server %q", path, header, status, by, body, name)
	}
}

func TestMirrorCopiesBothDirections(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")

	type copyOfConn struct {
		header         *wire.IncomingConnection
		fromPeer, back bytes.Buffer
	}
	copies := make(chan *copyOfConn, 1)
	subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeMirror}, agentclient.HandlerFunc(
		func(ctx context.Context, in *agentclient.Incoming) {
			defer in.Stream.Close()
			cc := &copyOfConn{header: in.Connection}
			for {
				chunk, err := wire.ReadChunk(in.Stream)
				if err != nil {
					break
				}
				if chunk.Dir == wire.FromPeer {
					cc.fromPeer.Write(chunk.Data)
				} else {
					cc.back.Write(chunk.Data)
				}
			}
			copies <- cc
		}))

	assertFromApp(t, env, "/", nil) // the target still answers
	cc := <-copies
	if cc.header.Mode != wire.ModeMirror || !strings.HasPrefix(cc.header.Source, localenv.PeerIP.String()+":") ||
		cc.header.Destination != fmt.Sprintf("%s:%d", localenv.AppIP, localenv.AppPort) {
		t.Errorf("header = %+v, want the peer as source and the app as destination", cc.header)
	}
	if !strings.HasPrefix(cc.fromPeer.String(), "GET / HTTP/1.1\r\n") {
		t.Errorf("peer side of the copy = %q", cc.fromPeer.String())
	}
	if !strings.Contains(cc.back.String(), localenv.AppGreeting) {
		t.Errorf("target side of the copy = %q, want the app's answer", cc.back.String())
	}
}

func TestMirrorReachesLocalServer(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	local := newLocalServer(t, "alice")
	subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeMirror}, local.forwarder())

	assertFromApp(t, env, "/items", nil)
	if r := local.next(t); r.URL.Path != "/items" {
		t.Errorf("local server got %s", r.URL.Path)
	}
}

func TestStealWholeConnections(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	local := newLocalServer(t, "alice")
	sub := subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, local.forwarder())

	assertFromLocal(t, env, "/", nil, "alice")
	assertFromLocal(t, env, "/healthz", nil, "alice")

	// Unsubscribing gives the port back to the application.
	if err := sub.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	assertFromApp(t, env, "/", nil)
}

func TestHeaderFilteredSteal(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	local := newLocalServer(t, "alice")
	subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal,
		Filter: &wire.HTTPFilter{Headers: map[string]string{"X-Remocal-User": "alice"}}}, local.forwarder())

	assertFromLocal(t, env, "/items", hdr("X-Remocal-User", "alice"), "alice")
	assertFromApp(t, env, "/items", hdr("X-Remocal-User", "bob"))
	assertFromApp(t, env, "/items", nil)
	assertFromApp(t, env, "/items", hdr("X-Remocal-User", "malice")) // patterns are anchored
	local.next(t)
	local.none(t, func(marker http.Header) {
		marker.Set("X-Remocal-User", "alice")
		assertFromLocal(t, env, "/items", marker, "alice")
	})
}

// TestFilterDecidesPerRequestOnKeepAlive sends several requests over one
// connection: each is routed on its own.
func TestFilterDecidesPerRequestOnKeepAlive(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	local := newLocalServer(t, "alice")
	subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal,
		Filter: &wire.HTTPFilter{Headers: map[string]string{"X-Remocal-User": "alice"}}}, local.forwarder())

	conn, err := env.Dial(testCtx(t), env.Peer, "tcp", fmt.Sprintf("%s:%d", localenv.AppIP, localenv.AppPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i, user := range []string{"alice", "bob", "alice", "", "alice"} {
		req, _ := http.NewRequest("POST", "http://app/echo", strings.NewReader(fmt.Sprintf("body-%d", i)))
		if user != "" {
			req.Header.Set("X-Remocal-User", user)
		}
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := env.App.Hostname
		if user == "alice" {
			want = "local-alice"
		}
		if got := resp.Header.Get("X-Served-By"); got != want {
			t.Errorf("request %d (user %q) served by %q (%q), want %q", i, user, got, body, want)
		}
	}
}

func TestPathFilterAndHeaderPrecedence(t *testing.T) {
	env := envtest.New(t)
	addr := startAgent(t, env.App, agentOptions{}).addr
	alice := connect(t, addr, "alice@laptop")
	bob := connect(t, addr, "bob@desk")
	aliceLocal, bobLocal := newLocalServer(t, "alice"), newLocalServer(t, "bob")

	subscribe(t, alice, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal,
		Filter: &wire.HTTPFilter{Path: "/api/.*"}}, aliceLocal.forwarder())
	subscribe(t, bob, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal,
		Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "bob"}}}, bobLocal.forwarder())

	assertFromLocal(t, env, "/api/items", hdr("X-User", "bob"), "bob") // header filter wins
	assertFromLocal(t, env, "/api/items", nil, "alice")
	assertFromLocal(t, env, "/other", hdr("X-User", "bob"), "bob")
	assertFromApp(t, env, "/healthz", nil)
}

func TestFilteredMirror(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	local := newLocalServer(t, "alice")
	subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeMirror,
		Filter: &wire.HTTPFilter{Path: "/items", Methods: []string{"GET"}}}, local.forwarder())

	assertFromApp(t, env, "/healthz", nil)
	assertFromApp(t, env, "/items", hdr("X-Trace", "42"))
	r := local.next(t)
	if r.URL.Path != "/items" || r.Header.Get("X-Trace") != "42" {
		t.Errorf("mirrored request = %s %v", r.URL, r.Header)
	}
	local.none(t, func(marker http.Header) { assertFromApp(t, env, "/items", marker) })
}

func TestConflictsNameTheHolder(t *testing.T) {
	env := envtest.New(t)
	addr := startAgent(t, env.App, agentOptions{}).addr
	alice := connect(t, addr, "alice@laptop")
	bob := connect(t, addr, "bob@desk")
	ctx := testCtx(t)
	h := newLocalServer(t, "x").forwarder()

	aliceSteal := subscribe(t, alice, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, h)
	_, err := bob.Subscribe(ctx, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, h)
	var we *wire.Error
	if !errorsAs(err, &we) || we.Code != wire.CodeConflict || we.Holder == nil || we.Holder.Client != "alice@laptop" ||
		!strings.Contains(we.Message, "alice@laptop") || !strings.Contains(we.Message, "port 8080") {
		t.Fatalf("second unfiltered steal: want a conflict naming alice@laptop, got %v", err)
	}
	_, err = bob.Subscribe(ctx, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal,
		Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "bob"}}}, h)
	if wire.CodeOf(err) != wire.CodeConflict {
		t.Fatalf("filtered steal beside an unfiltered one: want conflict, got %v", err)
	}
	subscribe(t, bob, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeMirror}, h) // mirrors never conflict

	if err := aliceSteal.Close(ctx); err != nil {
		t.Fatal(err)
	}
	subscribe(t, alice, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal,
		Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "alice"}}}, h)
	subscribe(t, bob, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal,
		Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "bob"}}}, h) // different values coexist
	_, err = bob.Subscribe(ctx, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal,
		Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "alice", "X-Env": "dev"}}}, h)
	if !errorsAs(err, &we) || we.Code != wire.CodeConflict || we.Holder.Client != "alice@laptop" || we.Holder.Filter == nil {
		t.Fatalf("superset of alice's headers: want conflict naming alice's filter, got %v", err)
	}
}

func TestDisconnectReleasesPorts(t *testing.T) {
	env := envtest.New(t)
	addr := startAgent(t, env.App, agentOptions{}).addr
	alice := connect(t, addr, "alice@laptop")
	local := newLocalServer(t, "alice")
	subscribe(t, alice, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, local.forwarder())
	assertFromLocal(t, env, "/", nil, "alice")

	alice.Close()
	// The agent notices the disconnect asynchronously; once it has, another
	// client may steal the port and direct traffic is back.
	bob := connect(t, addr, "bob@desk")
	ctx := testCtx(t)
	if err := poll.Until(ctx, 5*time.Second, func() error {
		s, err := bob.Subscribe(ctx, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, local.forwarder())
		if err == nil {
			s.Close(ctx)
			return nil
		}
		if wire.CodeOf(err) != wire.CodeConflict {
			t.Fatalf("steal after the holder disconnected: %v", err)
		}
		return err
	}); err != nil {
		t.Fatalf("steal after the holder disconnected: %v", err)
	}
	assertFromApp(t, env, "/", nil)
}

func TestSeveralClientsAtOnce(t *testing.T) {
	env := envtest.New(t)
	addr := startAgent(t, env.App, agentOptions{}).addr
	var locals []*localServer
	for _, name := range []string{"alice", "bob", "carol"} {
		c := connect(t, addr, name+"@laptop")
		ls := newLocalServer(t, name)
		locals = append(locals, ls)
		subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeMirror}, ls.forwarder())
		if _, err := c.Env(testCtx(t), []string{"GREETING"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	assertFromApp(t, env, "/items", nil)
	for _, ls := range locals {
		if r := ls.next(t); r.URL.Path != "/items" {
			t.Errorf("mirror got %s", r.URL.Path)
		}
	}
}

func TestStolenRequestWithLocalProcessDown(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	local := newLocalServer(t, "alice")
	local.Close() // the developer's process is not running
	subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal,
		Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "alice"}}}, local.forwarder())

	status, body, _ := get(t, env, "/", hdr("X-User", "alice"))
	if status != http.StatusBadGateway || !strings.Contains(body, "local process is not answering") {
		t.Errorf("status %d body %q; want 502 explaining the local process is down", status, body)
	}
	assertFromApp(t, env, "/", nil)
}

// A session that reconnects (same Session in the hello) takes over from
// its previous connection at once, ports included, even while the agent
// still sees that connection alive: the port-forward carrying it may have
// dropped anywhere between the laptop and the agent.
func TestReconnectingSessionReplacesItsConnection(t *testing.T) {
	env := envtest.New(t)
	addr := startAgent(t, env.App, agentOptions{}).addr
	dial := func(session string) *agentclient.Client {
		c, err := agentclient.Dial(testCtx(t), addr, agentclient.Options{Name: "alice@laptop", Version: "test", Session: session, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	first := dial("s-1")
	local := newLocalServer(t, "alice")
	subscribe(t, first, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, local.forwarder())

	// Another session is refused as usual.
	other := dial("s-2")
	if _, err := other.Subscribe(testCtx(t), wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, local.forwarder()); wire.CodeOf(err) != wire.CodeConflict {
		t.Fatalf("another session's steal: want a conflict, got %v", err)
	}
	second := dial("s-1")
	subscribe(t, second, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal}, local.forwarder())
	select {
	case <-first.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the agent kept the replaced connection open")
	}
	assertFromLocal(t, env, "/", nil, "alice")
}

// probeFrom sends GET path from pod on a connection of its own (as the
// kubelet does) with the given User-Agent, and says who answered.
func probeFrom(t *testing.T, env *localenv.Env, pod *localenv.Pod, path, userAgent string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), "GET", "http://"+localenv.AppIP.String()+":8080"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Close = true
	resp, err := env.HTTP(pod).Do(req)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", path, pod.Name, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("X-Served-By")
}

// Kubelet probes stay with the application while its port is stolen,
// filtered or not: a request from the node (here the peer pod plays it)
// with the kubelet's User-Agent. Either sign alone is not a probe.
func TestKubeletProbesAreNotStolen(t *testing.T) {
	for _, filter := range []*wire.HTTPFilter{nil, {Path: "/.*"}} {
		t.Run(fmt.Sprintf("filter=%v", filter), func(t *testing.T) {
			env := envtest.New(t)
			c := connect(t, startAgent(t, env.App, agentOptions{nodeAddrs: []netip.Addr{localenv.PeerIP}}).addr, "alice@laptop")
			local := newLocalServer(t, "alice")
			subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal, Filter: filter}, local.forwarder())

			if by := probeFrom(t, env, env.Peer, "/healthz", "kube-probe/1.34"); by != env.App.Hostname {
				t.Errorf("a kubelet probe from the node was served by %q, want the application", by)
			}
			if by := probeFrom(t, env, env.Peer, "/healthz", "curl/8.0"); by != "local-alice" {
				t.Errorf("another client on the node was served by %q, want the stealing laptop", by)
			}
			if by := probeFrom(t, env, env.Redis, "/healthz", "kube-probe/1.34"); by != "local-alice" {
				t.Errorf("a kubelet User-Agent from another pod was served by %q, want the stealing laptop", by)
			}
			local.next(t)
			local.next(t)
			// Another client on the node, as a marker.
			local.none(t, func(marker http.Header) { assertFromLocal(t, env, "/healthz", marker, "alice") })
		})
	}
}
