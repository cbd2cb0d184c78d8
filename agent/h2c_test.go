package agent_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
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

// serveInApp serves h on port inside the app pod's namespace (the
// application of these tests), until the test ends.
func serveInApp(t *testing.T, env *localenv.Env, port int, srv *http.Server) {
	t.Helper()
	ns, err := env.App.NS()
	if err != nil {
		t.Fatal(err)
	}
	l, err := ns.Listen(context.Background(), "tcp", fmt.Sprintf(":%d", port))
	ns.Close()
	if err != nil {
		t.Fatal(err)
	}
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

	var dials atomic.Int32
	tr := &http.Transport{Protocols: h2cProtocols(false), DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return env.Dial(ctx, env.Peer, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	for _, tc := range []struct{ user, body, want string }{
		{"alice", "a", "local-alice HTTP/2.0 /x a\n"},
		{"", "", "app HTTP/2.0 /x \n"},
		{"bob", "b", "app HTTP/2.0 /x b\n"},
		{"alice", strings.Repeat("z", 300<<10), "local-alice HTTP/2.0 /x " + strings.Repeat("z", 300<<10) + "\n"},
	} {
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
		by := strings.Fields(tc.want)[0]
		if string(body) != tc.want || resp.Header.Get("X-Served-By") != by || resp.Trailer.Get("X-Served-By-Trailer") != by {
			t.Errorf("user %q: %s %q (header %q, trailer %q); want %.60q from %s", tc.user, resp.Proto, body[:min(len(body), 60)],
				resp.Header.Get("X-Served-By"), resp.Trailer.Get("X-Served-By-Trailer"), tc.want, by)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("the client dialled %d connections, want every request on one", n)
	}
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
