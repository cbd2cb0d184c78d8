package broker_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
)

// TestStolenRequestsOfAConnectionForNewAndOlderClients: the agent sends
// the operator the stolen requests of a peer connection on one stream per
// subscription (wire.CapHTTP1Conn). A client that lists the capability
// gets that stream as it is; an older one gets a stream per request. On one
// keep-alive peer connection whose requests alternate between both and the
// application, each request reaches the right one.
func TestStolenRequestsOfAConnectionForNewAndOlderClients(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := testCtx(t)
	alice := f.mustConnect("alice", clientOptions{})
	bob := f.mustConnect("bob", clientOptions{without: []wire.Capability{wire.CapHTTP1Conn}})
	subs := map[string]interface{ Load() uint64 }{}
	for user, c := range map[string]*client{"alice": alice, "bob": bob} {
		ls := newLocalServer(t, user)
		spec := wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": user}}}
		sub, err := c.Subscribe(ctx, spec, ls.forwarder())
		if err != nil {
			t.Fatalf("%s steals: %v", user, err)
		}
		subs[user] = &sub.Deliveries
	}

	conn, err := f.env.Dial(ctx, f.env.Peer, "tcp", fmt.Sprintf("%s:8080", localenv.AppIP))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	users := []string{"alice", "bob", "", "alice", "bob", "bob", "alice", "", "alice"}
	for i, user := range users {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://app/echo?r=%d", i), nil)
		if user != "" {
			req.Header.Set("X-User", user)
		}
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("request %d (%q): %v", i, user, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := f.env.App.Hostname
		if user != "" {
			want = "local-" + user
		}
		if by := resp.Header.Get("X-Served-By"); resp.StatusCode != 200 || by != want {
			t.Fatalf("request %d (%q): %d from %q (%q), want %q", i, user, resp.StatusCode, by, body, want)
		}
	}
	// Through the operator each client sees one delivery per stream.
	if got := subs["alice"].Load(); got != 1 {
		t.Errorf("alice's 4 requests came on %d streams, want 1", got)
	}
	if got := subs["bob"].Load(); got != 3 {
		t.Errorf("bob's 3 requests came on %d streams, want one each", got)
	}
}
