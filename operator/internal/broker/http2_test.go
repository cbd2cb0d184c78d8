package broker_test

import (
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
	"github.com/remocal/remocal/test/poll"
)

func h2cOnly(http1 bool) *http.Protocols {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP1(http1)
	return &p
}

// h2cServer answers "NAME PROTO PATH" and records the paths it got.
type h2cServer struct {
	name string
	mu   sync.Mutex
	got  []string
}

func (s *h2cServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.got = append(s.got, r.URL.Path)
	s.mu.Unlock()
	fmt.Fprintf(w, "%s %s %s", s.name, r.Proto, r.URL.Path)
}

func (s *h2cServer) received(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.got {
		if p == path {
			return true
		}
	}
	return false
}

// HTTP/2 streams routed by the agents reach the operator's clients: a
// filtered steal and a filtered mirror of the same header, each with its
// own h2c delivery, the unmatched streams answered by the application.
func TestHTTP2StreamsThroughTheOperator(t *testing.T) {
	const port = 9092
	f := newFixture(t, fixtureOptions{})
	ctx := testCtx(t)
	ns, err := f.env.App.NS()
	if err != nil {
		t.Fatal(err)
	}
	l, err := ns.Listen(ctx, "tcp", fmt.Sprintf(":%d", port))
	ns.Close()
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: &h2cServer{name: "app"}, Protocols: h2cOnly(true)}
	served := make(chan struct{})
	go func() {
		defer close(served)
		app.Serve(l)
	}()
	t.Cleanup(func() {
		app.Close()
		<-served
	})

	locals := map[string]*h2cServer{}
	for user, mode := range map[string]wire.Mode{"alice": wire.ModeSteal, "bob": wire.ModeMirror} {
		locals[user] = &h2cServer{name: "local-" + user}
		ls := httptest.NewUnstartedServer(locals[user])
		ls.Config.Protocols = h2cOnly(true)
		ls.Start()
		t.Cleanup(ls.Close)
		c := f.mustConnect(user, clientOptions{})
		spec := wire.Subscribe{Port: port, Mode: mode, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "alice"}}}
		if _, err := c.Subscribe(ctx, spec, agentclient.ForwardTo(strings.TrimPrefix(ls.URL, "http://"))); err != nil {
			t.Fatalf("%s subscribes: %v", user, err)
		}
	}
	tr := &http.Transport{Protocols: h2cOnly(false), DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return f.env.Dial(ctx, f.env.Peer, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	for _, tc := range []struct{ path, user, want string }{
		{"/mine", "alice", "local-alice HTTP/2.0 /mine"},
		{"/other", "", "app HTTP/2.0 /other"},
	} {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s:%d%s", localenv.AppIP, port, tc.path), nil)
		if tc.user != "" {
			req.Header.Set("X-User", tc.user)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tc.want {
			t.Errorf("GET %s as %q: %q, want %q", tc.path, tc.user, body, tc.want)
		}
	}
	if err := poll.Until(ctx, 10*time.Second, func() error {
		if !locals["bob"].received("/mine") {
			return fmt.Errorf("bob's mirror has no copy of /mine")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if locals["bob"].received("/other") {
		t.Error("bob's mirror got a copy of an unmatched stream")
	}
}
