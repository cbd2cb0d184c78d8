package apiserver

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/operator"
)

const pf = api + "/namespaces/shop/targets/deployment.inventory/portforward"

func TestPortForwardUpgradesAndCarriesBytes(t *testing.T) {
	ts := startServer(t)
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			conn, r, res := ts.dialUpgrade(t, method, "alice", pf, true)
			if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != operator.UpgradeProtocol ||
				!strings.EqualFold(res.Header.Get("Connection"), "upgrade") {
				t.Fatalf("response %s %v", res.Status, res.Header)
			}
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line != "hello alice [developers system:authenticated] on shop/deployment.inventory\n" {
				t.Errorf("the broker was given %q", line)
			}
			for i := range 3 {
				fmt.Fprintf(conn, "ping %d\n", i)
				if got, err := r.ReadString('\n'); err != nil || got != fmt.Sprintf("echo ping %d\n", i) {
					t.Fatalf("echo %d: %q, %v", i, got, err)
				}
			}
			// The client hangs up; the broker ends and closes its side.
			if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
				t.Errorf("after the client's end: %q, %v", rest, err)
			}
		})
	}
}

func TestPortForwardRefusals(t *testing.T) {
	ts := startServer(t)
	// Unknown target: 404 before anything is upgraded.
	_, _, res := ts.dialUpgrade(t, http.MethodPost, "alice", api+"/namespaces/shop/targets/deployment.nope/portforward", true)
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown target: %s", res.Status)
	}
	// A plain request: 400 saying to use remocal.
	_, _, res = ts.dialUpgrade(t, http.MethodPost, "alice", pf, false)
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "use remocal") {
		t.Errorf("without upgrade: %s %s", res.Status, body)
	}
	// Without create on targets/portforward: RBAC refuses.
	_, _, res = ts.dialUpgrade(t, http.MethodPost, "eve", pf, true)
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("eve: %s", res.Status)
	}
	ts.broker.mu.Lock()
	defer ts.broker.mu.Unlock()
	if len(ts.broker.served) != 0 {
		t.Errorf("the broker served %v", ts.broker.served)
	}
}

// TestSessionsEndWithTheServer: upgraded connections are not the HTTP
// server's any more; Run still ends them and waits for them.
func TestSessionsEndWithTheServer(t *testing.T) {
	ts := startServer(t)
	_, r, res := ts.dialUpgrade(t, http.MethodPost, "alice", pf, true)
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("response %s", res.Status)
	}
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if err := ts.stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if rest, err := io.ReadAll(r); len(rest) != 0 {
		t.Errorf("after the server stopped: %q, %v", rest, err)
	}
}

// TestSessionsAreLongRunning: sessions hold no in-flight seat (with a
// limit of one, several sessions and a request run at once) and outlive
// the request timeout, which cuts other requests. The test waits past the
// timeout on purpose: that is the behaviour tested.
func TestSessionsAreLongRunning(t *testing.T) {
	const timeout = time.Second
	ts := startServerWith(t, timeout, 1)
	var sessions []*bufio.Reader
	var conns []net.Conn
	for range 3 {
		conn, r, res := ts.dialUpgrade(t, http.MethodPost, "alice", pf, true)
		if res.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("session %d: %s", len(sessions)+1, res.Status)
		}
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		sessions, conns = append(sessions, r), append(conns, conn)
	}
	// A request that is not long-running is cut at the timeout.
	start := time.Now()
	if code, body := ts.do(t, http.MethodGet, "alice", api+"/namespaces/slow/targets", nil); code != http.StatusGatewayTimeout {
		t.Errorf("a slow list: %d %s", code, body)
	}
	if waited := time.Since(start); waited < timeout {
		t.Fatalf("the slow list ended after %s, before the timeout", waited)
	}
	// The sessions, older than that, still carry bytes.
	for i, r := range sessions {
		fmt.Fprintf(conns[i], "still there %d?\n", i)
		if got, err := r.ReadString('\n'); err != nil || got != fmt.Sprintf("echo still there %d?\n", i) {
			t.Errorf("session %d after the request timeout: %q, %v", i, got, err)
		}
	}
}

// TestFollowerIsNotReadyAndRefusesSessions: a replica that does not lead
// fails /readyz (check "leader"), so its Service routes nothing to it,
// and answers a session that reaches it anyway with 503, which clients
// retry; the rest of its API still answers. Once it leads it is ready
// and serves sessions.
func TestFollowerIsNotReadyAndRefusesSessions(t *testing.T) {
	ts := startServer(t)
	readyz := func() (int, string) {
		res, err := ts.client(tls.Certificate{}).Get(ts.base + "/readyz?verbose")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
		return res.StatusCode, string(body)
	}
	leader := "remocal-operator-7d9-abcde"
	ts.otherLeader.Store(&leader)
	ts.follower.Store(true)

	if code, body := readyz(); code != http.StatusInternalServerError || !strings.Contains(body, "[-]leader failed") {
		t.Errorf("follower's /readyz: %d %s", code, body)
	}
	_, _, res := ts.dialUpgrade(t, http.MethodPost, "alice", pf, true)
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not the leader ("+leader+" is)") {
		t.Errorf("session on a follower: %s %s", res.Status, body)
	}
	ts.otherLeader.Store(nil)
	_, _, res = ts.dialUpgrade(t, http.MethodPost, "alice", pf, true)
	body, _ = io.ReadAll(io.LimitReader(res.Body, 1<<16))
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "election") {
		t.Errorf("session during an election: %s %s", res.Status, body)
	}
	if code, body := ts.do(t, http.MethodGet, "alice", api+"/namespaces/shop/targets", nil); code != http.StatusOK {
		t.Errorf("a follower's targets: %d %s", code, body)
	}

	ts.follower.Store(false)
	if code, body := readyz(); code != http.StatusOK {
		t.Errorf("leader's /readyz: %d %s", code, body)
	}
	conn, r, res := ts.dialUpgrade(t, http.MethodPost, "alice", pf, true)
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("session on the leader: %s", res.Status)
	}
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	ts.broker.mu.Lock()
	defer ts.broker.mu.Unlock()
	if len(ts.broker.served) != 1 {
		t.Errorf("the broker served %v, want the leader's one session", ts.broker.served)
	}
}
