package broker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/poll"
)

// Issue 10's load figure: 100 sessions on one target, each stealing by
// its own header, and 1000 requests in flight through the broker at the
// same moment, spread over them; 20 more sessions mirror the requests of
// 20 of those users. New requests arrive at most burst at a time: 1000
// connections opened in the same instant, under -race on a busy 2-vCPU
// machine, took longer than the agent's 5 s to open their streams, and
// the agent passed some to the application, as it does when a stealing
// client cannot be reached. Every local server holds its requests
// until all 1000 have arrived, so the test proves they were concurrent
// (a bounded queue anywhere on the path shows as a shortfall, not as a
// slow pass). Payloads are checked both ways with SHA-256: the local
// server answers the digest of what it received and a body derived from
// it, which the requester recomputes.
func TestLoadHundredSessionsThousandConcurrentRequests(t *testing.T) {
	const (
		sessions = 100
		mirrors  = 20 // mirroring sessions, of users u000..u019's requests
		requests = 1000
		burst    = 100
		reqSize  = 16 << 10
		respSize = 16 << 10
	)
	// Go raises the soft open-file limit to the hard one at start; the
	// test holds about 5 descriptors per request in flight (peer, agent,
	// forwarder and local server ends).
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < 8*requests {
		t.Fatalf("the open-file limit is %d; this test needs %d: raise it (ulimit -Hn / -n) before go test", lim.Cur, 8*requests)
	}
	f := newFixture(t, fixtureOptions{})
	ctx := testCtx(t)
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()

	all, release := make(chan struct{}), make(chan struct{})
	var sent, mirrored sync.Map // user → *digests
	// opening holds a slot per request on its way to its local server;
	// arrivedAt[i] frees request i's slot, once.
	opening := make(chan struct{}, burst)
	var arrivedAt [requests]atomic.Bool
	landed := func(i int) {
		if arrivedAt[i].CompareAndSwap(false, true) {
			<-opening
		}
	}
	var arrived, maxArrived atomic.Int64
	served := make([]atomic.Int64, sessions)
	clients := make([]*client, sessions)
	for i := range sessions {
		user := fmt.Sprintf("u%03d", i)
		// remocal's own heartbeat (kube.OperatorHeartbeat), not the
		// harness's quick one: 100 clients pinging every 200 ms is a load
		// of its own.
		c := f.mustConnect(user, clientOptions{heartbeat: 5 * time.Second})
		clients[i] = c
		ls := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sum := sha256.New()
			if _, err := io.Copy(sum, r.Body); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			digest := sum.Sum(nil)
			if n, err := strconv.Atoi(r.Header.Get("X-Request")); err == nil && n >= 0 && n < requests {
				landed(n)
			}
			served[i].Add(1)
			n := arrived.Add(1)
			for {
				m := maxArrived.Load()
				if n <= m || maxArrived.CompareAndSwap(m, n) {
					break
				}
			}
			if n == requests {
				close(all)
			}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			case <-ctx.Done():
			}
			w.Header().Set("X-Served-By", "local-"+user)
			w.Header().Set("X-Request-Sha256", hex.EncodeToString(digest))
			w.Write(responseBody(digest, respSize))
		}))
		t.Cleanup(ls.Close)
		spec := wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": user}}}
		if _, err := c.Subscribe(ctx, spec, agentclient.ForwardTo(strings.TrimPrefix(ls.URL, "http://"))); err != nil {
			t.Fatalf("%s subscribes: %v", user, err)
		}
	}

	for i := range mirrors {
		user := fmt.Sprintf("u%03d", i)
		c := f.mustConnect(fmt.Sprintf("m%03d", i), clientOptions{heartbeat: 5 * time.Second})
		got := &digests{}
		mirrored.Store(user, got)
		ls := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sum := sha256.New()
			io.Copy(sum, r.Body)
			got.add(hex.EncodeToString(sum.Sum(nil)))
		}))
		t.Cleanup(ls.Close)
		spec := wire.Subscribe{Port: 8080, Mode: wire.ModeMirror, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": user}}}
		if _, err := c.Subscribe(ctx, spec, agentclient.ForwardTo(strings.TrimPrefix(ls.URL, "http://"))); err != nil {
			t.Fatalf("mirror of %s subscribes: %v", user, err)
		}
	}
	for i := range sessions {
		sent.Store(fmt.Sprintf("u%03d", i), &digests{})
	}

	peer := f.env.HTTP(f.env.Peer)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for i := range requests {
		select {
		case opening <- struct{}{}:
		case <-ctx.Done():
		}
		wg.Go(func() {
			defer landed(i) // a request that failed on its way
			user := fmt.Sprintf("u%03d", i%sessions)
			d, _ := sent.Load(user)
			if err := loadRequest(ctx, peer, i, user, d.(*digests), reqSize, respSize); err != nil {
				errs <- err
			}
		})
	}
	// With all 1000 held open, the sessions' control requests still get
	// through: the streams must not starve them.
	select {
	case <-all:
		if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
			t.Logf("%d file descriptors open with %d requests in flight", len(fds), requests)
		}
		for _, c := range []*client{clients[0], clients[sessions/2], clients[sessions-1]} {
			t0 := time.Now()
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				t.Errorf("%s pings with 1000 requests in flight: %v", c.user, err)
			}
			t.Logf("%s: ping with 1000 requests in flight took %v", c.user, time.Since(t0).Round(time.Microsecond))
		}
	case <-ctx.Done():
	}
	close(release)
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n < 5 {
			t.Error(err)
		}
		n++
	}
	t.Logf("%d requests over %d sessions in %v; at most %d in flight at once", requests, sessions, time.Since(start).Round(time.Millisecond), maxArrived.Load())
	if n > 0 {
		t.Fatalf("%d of %d requests failed", n, requests)
	}
	if got := maxArrived.Load(); got != requests {
		t.Fatalf("only %d of %d requests were in flight at once", got, requests)
	}

	// Every request reached its own session: its local server and its
	// counters saw exactly its share.
	list, _ := f.b.List(ns)
	if len(list) != sessions+mirrors {
		t.Fatalf("%d sessions listed, want %d", len(list), sessions+mirrors)
	}
	for _, s := range list {
		if got := s.Status.Counters.IncomingRequests; got != requests/sessions {
			t.Errorf("session %s of %s counted %d requests, want %d", s.Name, s.Spec.User, got, requests/sessions)
		}
	}
	// Each mirror got a copy of each of its user's requests, intact
	// (copies travel on their own, after the requests).
	for i := range mirrors {
		user := fmt.Sprintf("u%03d", i)
		want, _ := sent.Load(user)
		got, _ := mirrored.Load(user)
		err := poll.Until(ctx, 20*time.Second, func() error {
			if g, w := got.(*digests).sorted(), want.(*digests).sorted(); !slices.Equal(g, w) {
				return fmt.Errorf("the mirror of %s got %d copies, want the %d requests sent (or their bodies differ)", user, len(g), len(w))
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	for i := range served {
		if got := served[i].Load(); got != requests/sessions {
			t.Errorf("the local server of u%03d served %d requests, want %d", i, got, requests/sessions)
		}
	}
}

// loadRequest posts a random body as user and checks the answer: served
// by user's local server, which got the body intact, with the response
// body intact.
func loadRequest(ctx context.Context, client *http.Client, i int, user string, sent *digests, reqSize, respSize int) error {
	body := make([]byte, reqSize)
	rand.Read(body)
	digest := sha256.Sum256(body)
	sent.add(hex.EncodeToString(digest[:]))
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+localenv.AppIP.String()+":8080/load", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-User", user)
	req.Header.Set("X-Request", strconv.Itoa(i))
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("request %d of %s: %v", i, user, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return fmt.Errorf("request %d of %s: read the response: %v", i, user, err)
	case resp.Header.Get("X-Served-By") != "local-"+user:
		return fmt.Errorf("request %d of %s: served by %q (status %d)", i, user, resp.Header.Get("X-Served-By"), resp.StatusCode)
	case resp.Header.Get("X-Request-Sha256") != hex.EncodeToString(digest[:]):
		return fmt.Errorf("request %d of %s: the local server got a body with digest %s, want %x: request bytes lost or corrupted",
			i, user, resp.Header.Get("X-Request-Sha256"), digest)
	case !bytes.Equal(got, responseBody(digest[:], respSize)):
		return fmt.Errorf("request %d of %s: response of %d bytes differs from the %d sent: response bytes lost or corrupted", i, user, len(got), respSize)
	}
	return nil
}

// responseBody is size pseudo-random bytes determined by seed, so the
// requester can recompute what the local server sent.
func responseBody(seed []byte, size int) []byte {
	var key [32]byte
	copy(key[:], seed)
	out := make([]byte, size)
	mrand.NewChaCha8(key).Read(out)
	return out
}

// digests collects SHA-256 digests of bodies, concurrently.
type digests struct {
	mu sync.Mutex
	l  []string
}

func (d *digests) add(s string) {
	d.mu.Lock()
	d.l = append(d.l, s)
	d.mu.Unlock()
}

func (d *digests) sorted() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(slices.Values(d.l))
}
