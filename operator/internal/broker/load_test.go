package broker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
)

// Many sessions stealing by header and many concurrent requests through
// one agent connection: every request reaches its own session's local
// server with its body intact, and every response returns intact.
func TestManySessionsManyConcurrentStolenRequests(t *testing.T) {
	const sessions, requests, bodySize = 8, 200, 48 << 10
	f := newFixture(t, fixtureOptions{})
	ctx := testCtx(t)
	for i := range sessions {
		user := fmt.Sprintf("u%d", i)
		c := f.mustConnect(user, clientOptions{})
		// The local server answers the body's digest, so a byte lost or
		// changed either way is seen.
		ls := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sum := sha256.New()
			io.Copy(sum, r.Body)
			w.Header().Set("X-Served-By", "local-"+user)
			fmt.Fprint(w, hex.EncodeToString(sum.Sum(nil)))
		}))
		t.Cleanup(ls.Close)
		spec := wire.Subscribe{Port: 8080, Mode: wire.ModeSteal, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": user}}}
		if _, err := c.Subscribe(ctx, spec, agentclient.ForwardTo(strings.TrimPrefix(ls.URL, "http://"))); err != nil {
			t.Fatal(err)
		}
	}
	client := f.env.HTTP(f.env.Peer)
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("u%d", i%sessions)
			body := make([]byte, bodySize)
			rand.Read(body)
			want := sha256.Sum256(body)
			rctx, cancel := context.WithTimeout(ctx, 25*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(rctx, "POST", "http://"+localenv.AppIP.String()+":8080/upload", bytes.NewReader(body))
			req.Header.Set("X-User", user)
			resp, err := client.Do(req)
			if err != nil {
				errs <- fmt.Errorf("request %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			switch {
			case err != nil:
				errs <- fmt.Errorf("request %d: read response: %v", i, err)
			case resp.Header.Get("X-Served-By") != "local-"+user:
				errs <- fmt.Errorf("request %d of %s served by %q", i, user, resp.Header.Get("X-Served-By"))
			case string(got) != hex.EncodeToString(want[:]):
				errs <- fmt.Errorf("request %d of %s: digest %q, want %x: bytes lost or corrupted", i, user, got, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n < 5 {
			t.Error(err)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d requests failed", n, requests)
	}
	list, _ := f.b.List(ns)
	var total uint64
	for _, s := range list {
		total += s.Status.Counters.IncomingRequests
	}
	if total != requests {
		t.Errorf("the sessions counted %d requests, want %d", total, requests)
	}
}
