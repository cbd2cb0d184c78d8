package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
)

// Stolen HTTP/1 requests of one peer connection share one stream when the
// client lists wire.CapHTTP1Conn (agent/internal/incoming/stolen.go), and
// get a stream each when it does not.

// peerConn is a keep-alive connection from the peer pod to the
// application's port.
type peerConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialPeer(t *testing.T, env *localenv.Env) *peerConn {
	t.Helper()
	conn, err := env.Dial(testCtx(t), env.Peer, "tcp", fmt.Sprintf("%s:%d", localenv.AppIP, localenv.AppPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &peerConn{t: t, conn: conn, br: bufio.NewReader(conn)}
}

// send writes a request with body (none if empty) and the user header
// (none if empty).
func (p *peerConn) send(method, path, user, body string) *http.Request {
	p.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://app"+path, rd)
	if user != "" {
		req.Header.Set("X-Remocal-User", user)
	}
	if err := req.Write(p.conn); err != nil {
		p.t.Fatal(err)
	}
	return req
}

// read reads the response to req: status, who served it, body.
func (p *peerConn) read(req *http.Request) (int, string, string) {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(p.br, req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		p.t.Fatalf("%s %s: body: %v", req.Method, req.URL.Path, err)
	}
	return resp.StatusCode, resp.Header.Get("X-Served-By"), string(body)
}

// echoServer stands for the developer's process: it answers with the
// request's body (or path) and counts the connections it accepted.
type echoServer struct {
	*httptest.Server
	mu    sync.Mutex
	conns int
}

func newEchoServer(t *testing.T, handler http.HandlerFunc) *echoServer {
	t.Helper()
	es := &echoServer{}
	if handler == nil {
		handler = func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Served-By", "local")
			fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), body)
		}
	}
	es.Server = httptest.NewUnstartedServer(handler)
	es.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			es.mu.Lock()
			es.conns++
			es.mu.Unlock()
		}
	}
	es.Start()
	t.Cleanup(es.Close)
	return es
}

func (es *echoServer) connections() int {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.conns
}

func (es *echoServer) forwarder() *agentclient.Forwarder {
	return agentclient.ForwardTo(strings.TrimPrefix(es.URL, "http://"))
}

func connectWithout(t *testing.T, addr, name string, without ...wire.Capability) *agentclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := agentclient.Dial(ctx, addr, agentclient.Options{Name: name, Version: "test", Logger: testLogger(t), WithoutCapabilities: without})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var aliceFilter = &wire.HTTPFilter{Headers: map[string]string{"X-Remocal-User": "alice"}}

// alternate sends n requests on one connection, every other one matching
// the filter, with bodies of every framing, and checks every answer.
func alternate(t *testing.T, env *localenv.Env, p *peerConn, n int) (stolen int) {
	t.Helper()
	for i := range n {
		user, body := "bob", ""
		if i%2 == 0 {
			user = "alice"
			stolen++
		}
		method := "GET"
		if i%3 != 0 {
			method, body = "POST", fmt.Sprintf("body-%d", i)
		}
		path := fmt.Sprintf("/echo?r=%d", i)
		req := p.send(method, path, user, body)
		if i%4 == 1 {
			// Pipelined: the next request is on its way before this
			// one is answered.
			req2 := p.send("GET", path+"b", user, "")
			p.check(env, req, user, method, path, body, i)
			p.check(env, req2, user, "GET", path+"b", "", i)
			if user == "alice" {
				stolen++
			}
			continue
		}
		p.check(env, req, user, method, path, body, i)
	}
	return stolen
}

func (p *peerConn) check(env *localenv.Env, req *http.Request, user, method, path, body string, i int) {
	p.t.Helper()
	status, by, got := p.read(req)
	if user == "alice" {
		if want := method + " " + path + " " + body; status != 200 || by != "local" || got != want {
			p.t.Fatalf("request %d (alice): %d from %q: %q; want %q from the local server", i, status, by, got, want)
		}
		return
	}
	if status != 200 || by != env.App.Hostname {
		p.t.Fatalf("request %d (bob): %d from %q: %q; want the application", i, status, by, got)
	}
}

// TestStolenRequestsOfAConnectionShareAStream: many requests on one
// keep-alive connection, alternating between the stealing client and the
// application, pipelined some of the time: each gets its own answer, and
// the client's requests all came on one stream and reached the local server
// over one connection.
func TestStolenRequestsOfAConnectionShareAStream(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	local := newEchoServer(t, nil)
	sub := subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal, Filter: aliceFilter}, local.forwarder())

	p := dialPeer(t, env)
	stolen := alternate(t, env, p, 40)
	if got := sub.Deliveries.Load(); got != 1 {
		t.Errorf("%d stolen requests came on %d streams, want 1", stolen, got)
	}
	if got := local.connections(); got != 1 {
		t.Errorf("the local server got %d connections for one peer connection, want 1", got)
	}

	// A second peer connection gets a stream of its own.
	alternate(t, env, dialPeer(t, env), 4)
	if got := sub.Deliveries.Load(); got != 2 {
		t.Errorf("two peer connections came on %d streams, want 2", got)
	}
}

// TestStolenRequestsForAnOlderClient: a client without
// wire.CapHTTP1Conn (an older remocal) gets a stream per stolen request,
// as before, and the same answers.
func TestStolenRequestsForAnOlderClient(t *testing.T) {
	env := envtest.New(t)
	c := connectWithout(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop", wire.CapHTTP1Conn)
	local := newEchoServer(t, nil)
	sub := subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal, Filter: aliceFilter}, local.forwarder())

	stolen := alternate(t, env, dialPeer(t, env), 12)
	if got := sub.Deliveries.Load(); got != uint64(stolen) {
		t.Errorf("%d stolen requests came on %d streams, want a stream each", stolen, got)
	}
}

// TestKeptStreamEndsWithItsSubscription: after the client unsubscribes,
// the next matching request on the same peer connection goes to the
// application, not down the stream kept for it.
func TestKeptStreamEndsWithItsSubscription(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	local := newEchoServer(t, nil)
	sub := subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal, Filter: aliceFilter}, local.forwarder())

	p := dialPeer(t, env)
	p.check(env, p.send("GET", "/echo?a", "alice", ""), "alice", "GET", "/echo?a", "", 0)
	if err := sub.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	p.check(env, p.send("GET", "/echo?b", "alice", ""), "bob", "GET", "/echo?b", "", 1)
}

// TestLocalServerDropsItsKeptConnection: the local server closes its idle
// connections between two requests of a peer connection; the second
// request reaches it again over a new connection.
func TestLocalServerDropsItsKeptConnection(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	local := newEchoServer(t, nil)
	subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal, Filter: aliceFilter}, local.forwarder())

	p := dialPeer(t, env)
	p.check(env, p.send("GET", "/echo?a", "alice", ""), "alice", "GET", "/echo?a", "", 0)
	local.CloseClientConnections()
	p.check(env, p.send("GET", "/echo?b", "alice", ""), "alice", "GET", "/echo?b", "", 1)
	if got := local.connections(); got != 2 {
		t.Errorf("the local server got %d connections, want 2 (the dropped one and its replacement)", got)
	}
}

// TestPeerGoneMidBody: a peer that goes away in the middle of a stolen
// request's body cuts the local server's request too (its body read
// fails) instead of leaving it, the stream and the agent waiting for the
// rest; the next peer is served as usual.
func TestPeerGoneMidBody(t *testing.T) {
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("older-client=%v", old), func(t *testing.T) {
			env := envtest.New(t)
			addr := startAgent(t, env.App, agentOptions{}).addr
			c := connect(t, addr, "alice@laptop")
			if old {
				c = connectWithout(t, addr, "alice@laptop", wire.CapHTTP1Conn)
			}
			bodyErr := make(chan error, 1)
			local := newEchoServer(t, func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(r.Body)
				if r.URL.RequestURI() == "/echo?cut" {
					bodyErr <- err
					return
				}
				w.Header().Set("X-Served-By", "local")
				fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), body)
			})
			subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal, Filter: aliceFilter}, local.forwarder())

			p := dialPeer(t, env)
			p.check(env, p.send("GET", "/echo?first", "alice", ""), "alice", "GET", "/echo?first", "", 0)
			fmt.Fprintf(p.conn, "POST /echo?cut HTTP/1.1\r\nHost: app\r\nX-Remocal-User: alice\r\nContent-Length: 1000\r\n\r\nonly part of it")
			p.conn.Close()
			select {
			case err := <-bodyErr:
				if err == nil {
					t.Fatal("the local server read the whole body of a request whose peer left after 15 of 1000 bytes")
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the local server is still waiting for the rest of a body whose peer is gone")
			}
			q := dialPeer(t, env)
			q.check(env, q.send("POST", "/echo?next", "alice", "x"), "alice", "POST", "/echo?next", "x", 1)
		})
	}
}

// TestSlowReaderHoldsOnlyItsConnection: a peer that does not read a large
// stolen response holds up neither other peers' stolen requests nor,
// once it reads, its own connection's next request; the response arrives
// whole.
func TestSlowReaderHoldsOnlyItsConnection(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	const big = 16 << 20
	payload := bytes.Repeat([]byte("0123456789abcdef"), big/16)
	wrote := make(chan int64, 1)
	local := newEchoServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", "local")
		if r.URL.RequestURI() == "/echo?big" {
			n, _ := w.Write(payload)
			wrote <- int64(n)
			return
		}
		fmt.Fprintf(w, "%s %s ", r.Method, r.URL.RequestURI())
	})
	subscribe(t, c, wire.Subscribe{Port: localenv.AppPort, Mode: wire.ModeSteal, Filter: aliceFilter}, local.forwarder())

	slow := dialPeer(t, env)
	req := slow.send("GET", "/echo?big", "alice", "")
	// The response is larger than every buffer on the way: until the
	// slow peer reads, the local server cannot finish writing it.
	other := dialPeer(t, env)
	for i := range 5 {
		other.check(env, other.send("GET", "/echo?other", "alice", ""), "alice", "GET", "/echo?other", "", i)
	}
	select {
	case n := <-wrote:
		t.Fatalf("the local server wrote all %d bytes before the peer read any: something buffers without bound", n)
	default:
	}
	status, by, body := slow.read(req)
	if status != 200 || by != "local" || body != string(payload) {
		t.Fatalf("slow peer: %d from %q, %d bytes; want the %d bytes from the local server", status, by, len(body), len(payload))
	}
	slow.check(env, slow.send("GET", "/echo?after", "alice", ""), "alice", "GET", "/echo?after", "", 1)
}
