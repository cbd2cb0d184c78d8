package agent_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/procwatch"
)

// h2Handler answers "NAME PROTO PATH BODY" with X-Served-By in the header
// and in a trailer.
func h2Handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Served-By-Trailer")
		w.Header().Set("X-Served-By", name)
		fmt.Fprintf(w, "%s %s %s %s\n", name, r.Proto, r.URL.Path, body)
		w.Header().Set("X-Served-By-Trailer", name)
	})
}

func h2cProtocols(http1 bool) *http.Protocols {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP1(http1)
	return &p
}

// listenInApp listens on port inside the app pod's namespace.
func listenInApp(t *testing.T, env *localenv.Env, port int) net.Listener {
	t.Helper()
	ns, err := env.App.NS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	l, err := ns.Listen(context.Background(), "tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// serveInApp serves h on port inside the app pod's namespace (the
// application of these tests), until the test ends.
func serveInApp(t *testing.T, env *localenv.Env, port int, srv *http.Server) {
	t.Helper()
	l := listenInApp(t, env, port)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}

// startH2CLocal is a developer's local server speaking h2c (prior
// knowledge, what the agent's deliveries are).
func startH2CLocal(t *testing.T, name string) string {
	t.Helper()
	local := httptest.NewUnstartedServer(h2Handler(name))
	local.Config.Protocols = h2cProtocols(true)
	local.Start()
	t.Cleanup(local.Close)
	return strings.TrimPrefix(local.URL, "http://")
}

// HTTP/2 with prior knowledge: requests of one connection go to the
// stealing laptop or the application by header, trailers included.
func TestH2CStealPerStream(t *testing.T) {
	const port = 9092
	env := envtest.New(t)
	serveInApp(t, env, port, &http.Server{Handler: h2Handler("app"), Protocols: h2cProtocols(true)})
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	subscribe(t, c, wire.Subscribe{Port: port, Mode: wire.ModeSteal, Filter: userFilter("alice")}, agentclient.ForwardTo(startH2CLocal(t, "local-alice")))

	if n := checkH2CStealByHeader(t, env, port, "local-alice", "app"); n != 1 {
		t.Errorf("the client dialled %d connections, want every request on one", n)
	}
}

// checkH2CStealByHeader sends POSTs over h2c from the peer pod to the
// app's port: alice's (X-User) must be answered by local, the others by
// app (servers answering as h2Handler does), bodies and trailers intact.
// It returns how many connections the client dialled.
func checkH2CStealByHeader(t *testing.T, env *localenv.Env, port int, local, app string) int32 {
	t.Helper()
	var dials atomic.Int32
	tr := &http.Transport{Protocols: h2cProtocols(false), DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return env.Dial(ctx, env.Peer, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	for _, tc := range []struct{ user, body, by string }{
		{"alice", "a", local},
		{"", "", app},
		{"bob", "b", app},
		{"alice", strings.Repeat("z", 300<<10), local},
	} {
		want := tc.by + " HTTP/2.0 /x " + tc.body + "\n"
		req, _ := http.NewRequestWithContext(testCtx(t), "POST", fmt.Sprintf("http://%s:%d/x", localenv.AppIP, port), strings.NewReader(tc.body))
		if tc.user != "" {
			req.Header.Set("X-User", tc.user)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("user %q: %v", tc.user, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if string(body) != want || resp.Header.Get("X-Served-By") != tc.by || resp.Trailer.Get("X-Served-By-Trailer") != tc.by {
			t.Errorf("user %q: %s %q (header %q, trailer %q); want %.60q from %s", tc.user, resp.Proto, body[:min(len(body), 60)],
				resp.Header.Get("X-Served-By"), resp.Trailer.Get("X-Served-By-Trailer"), want, tc.by)
		}
	}
	return dials.Load()
}

// An HTTP/1.1 request upgrading to h2c (curl --http2) becomes stream 1 of
// an HTTP/2 connection the agent routes stream by stream like any other.
func TestH2CUpgradeRoutedPerStream(t *testing.T) {
	const port = 9092
	env := envtest.New(t)
	serveInApp(t, env, port, &http.Server{Handler: h2Handler("app"), Protocols: h2cProtocols(true)})
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	subscribe(t, c, wire.Subscribe{Port: port, Mode: wire.ModeSteal, Filter: userFilter("alice")}, agentclient.ForwardTo(startH2CLocal(t, "local-alice")))

	url := fmt.Sprintf("http://%s:%d", localenv.AppIP, port)
	for _, first := range []string{"alice", "bob"} {
		res := procwatch.Run(t, inPod(t, env.Peer, "curl", "-sS", "--http2", "-H", "X-User: "+first, url+"/first",
			"--next", "--http2", "-H", "X-User: alice", url+"/second",
			"--next", "--http2", url+"/third"))
		want := map[string]string{"alice": "local-alice", "bob": "app"}[first] + " HTTP/2.0 /first \n" +
			"local-alice HTTP/2.0 /second \napp HTTP/2.0 /third \n"
		if res.Code != 0 || res.Stdout != want {
			t.Errorf("curl (first request by %s): exit %d, output %q; want %q", first, res.Code, res.Stdout, want)
		}
	}
}

// wsEcho answers each WebSocket message with "NAME: MESSAGE".
func wsEcho(name string) http.Handler {
	up := websocket.Upgrader{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			typ, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if err := ws.WriteMessage(typ, append([]byte(name+": "), msg...)); err != nil {
				return
			}
		}
	})
}

// A WebSocket upgrade that matches a filter takes the rest of its
// connection to the stealing laptop; one that does not stays with the
// application, whole.
func TestWebSocketStolenByFilter(t *testing.T) {
	const port = 9093
	env := envtest.New(t)
	serveInApp(t, env, port, &http.Server{Handler: wsEcho("app")})
	local := httptest.NewServer(wsEcho("local-alice"))
	t.Cleanup(local.Close)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	subscribe(t, c, wire.Subscribe{Port: port, Mode: wire.ModeSteal, Filter: userFilter("alice")}, agentclient.ForwardTo(strings.TrimPrefix(local.URL, "http://")))

	dialer := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return env.Dial(ctx, env.Peer, network, addr)
	}}
	for _, tc := range []struct{ user, by string }{{"alice", "local-alice"}, {"bob", "app"}, {"", "app"}} {
		h := http.Header{}
		if tc.user != "" {
			h.Set("X-User", tc.user)
		}
		ws, _, err := dialer.DialContext(testCtx(t), fmt.Sprintf("ws://%s:%d/echo", localenv.AppIP, port), h)
		if err != nil {
			t.Fatalf("user %q: dial: %v", tc.user, err)
		}
		for i := range 3 {
			msg := fmt.Sprint("m", i)
			if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("user %q: read: %v", tc.user, err)
			}
			if string(got) != tc.by+": "+msg {
				t.Errorf("user %q: echo %q, want %q", tc.user, got, tc.by+": "+msg)
			}
		}
		ws.Close()
	}
}

// perConnServer serves every connection accepted in the app pod on port
// with a server of its own, so that a test can shut one connection down
// (HTTP/2 GOAWAY) while the port keeps serving.
type perConnServer struct {
	conns chan *http.Server
}

func servePerConn(t *testing.T, env *localenv.Env, port int, h http.Handler) *perConnServer {
	t.Helper()
	l := listenInApp(t, env, port)
	p := &perConnServer{conns: make(chan *http.Server, 16)}
	var servers []*http.Server
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			srv := &http.Server{Handler: h, Protocols: h2cProtocols(true)}
			servers = append(servers, srv)
			p.conns <- srv
			go srv.Serve(&singleConn{c: c, done: make(chan struct{})})
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, s := range servers {
			s.Close()
		}
	})
	return p
}

// singleConn is a listener of one connection.
type singleConn struct {
	c         net.Conn
	taken     atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
}

func (s *singleConn) Accept() (net.Conn, error) {
	if s.taken.CompareAndSwap(false, true) {
		return s.c, nil
	}
	<-s.done
	return nil, net.ErrClosed
}

func (s *singleConn) Close() error {
	s.closeOnce.Do(func() { close(s.done) })
	return nil
}

func (s *singleConn) Addr() net.Addr { return s.c.LocalAddr() }

// The application going away from the agent's HTTP/2 connection (GOAWAY)
// does not end the peer's: its next stream reaches the application on a
// new connection. A peer resetting a stolen stream (RST_STREAM) cancels it
// at the local server, a local server resetting one resets it at the peer,
// and the connection's other streams go on.
func TestH2GoawayAndReset(t *testing.T) {
	const port = 9095
	env := envtest.New(t)
	app := servePerConn(t, env, port, h2Handler("app"))
	cancelled := make(chan struct{}, 1)
	local := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/break" {
			io.WriteString(w, "partial")
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler) // resets the stream mid-body
		}
		if r.URL.Path == "/hang" {
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
			cancelled <- struct{}{}
			return
		}
		h2Handler("local-alice").ServeHTTP(w, r)
	}))
	local.Config.Protocols = h2cProtocols(true)
	local.Start()
	t.Cleanup(local.Close)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	subscribe(t, c, wire.Subscribe{Port: port, Mode: wire.ModeSteal, Filter: userFilter("alice")}, agentclient.ForwardTo(strings.TrimPrefix(local.URL, "http://")))

	tr := &http.Transport{Protocols: h2cProtocols(false), DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return env.Dial(ctx, env.Peer, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	get := func(ctx context.Context, path, user string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s:%d%s", localenv.AppIP, port, path), nil)
		if user != "" {
			req.Header.Set("X-User", user)
		}
		return tr.RoundTrip(req)
	}
	expect := func(path, user, want string) {
		t.Helper()
		resp, err := get(testCtx(t), path, user)
		if err != nil {
			t.Fatalf("GET %s as %q: %v", path, user, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Errorf("GET %s as %q: %q, want %q", path, user, body, want)
		}
	}
	expect("/one", "", "app HTTP/2.0 /one \n")
	first := <-app.conns
	if err := first.Shutdown(testCtx(t)); err != nil { // GOAWAY, then close
		t.Fatal(err)
	}
	expect("/two", "", "app HTTP/2.0 /two \n")
	select {
	case <-app.conns:
	default:
		t.Error("the second request did not reach the application on a new connection")
	}

	ctx, cancel := context.WithCancel(testCtx(t))
	resp, err := get(ctx, "/hang", "alice")
	if err != nil {
		t.Fatal(err)
	}
	cancel() // RST_STREAM from the peer
	resp.Body.Close()
	select {
	case <-cancelled:
	case <-testCtx(t).Done():
		t.Fatal("the local server's stream was not cancelled")
	}
	// A stolen response that breaks off reaches the peer as a reset
	// stream, never as a complete shorter body.
	resp, err = get(testCtx(t), "/break", "alice")
	if err == nil {
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Errorf("a broken-off response arrived as complete: %q", body)
		}
	}
	expect("/three", "alice", "local-alice HTTP/2.0 /three \n")
}
