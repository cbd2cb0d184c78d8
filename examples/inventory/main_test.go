package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newTestServer(t *testing.T, cfg config) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(newServer(cfg).handler())
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test", "yes")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHandlers(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfgPath, []byte(`{"env":"test"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, config{ServiceName: "inventory", Greeting: "hi", ConfigPath: cfgPath, Hostname: "pod-1"})

	resp, body := get(t, "GET", ts.URL+"/")
	if body != "inventory on pod-1: hi\n" || resp.Header.Get("X-Served-By") != "pod-1" {
		t.Errorf("GET / = %q, X-Served-By %q", body, resp.Header.Get("X-Served-By"))
	}
	if resp, body := get(t, "GET", ts.URL+"/healthz"); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("GET /healthz = %d %q", resp.StatusCode, body)
	}
	if _, body := get(t, "GET", ts.URL+"/config"); body != `{"env":"test"}` {
		t.Errorf("GET /config = %q", body)
	}
	resp, _ = get(t, "GET", ts.URL+"/nope")
	if resp.StatusCode != 404 || resp.Header.Get("X-Served-By") != "pod-1" {
		t.Errorf("GET /nope = %d, X-Served-By %q", resp.StatusCode, resp.Header.Get("X-Served-By"))
	}

	_, body = get(t, "PUT", ts.URL+"/echo?x=1")
	var e echoReply
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("GET /echo: %v: %q", err, body)
	}
	if e.Method != "PUT" || e.Path != "/echo" || e.Query != "x=1" || e.Headers["X-Test"][0] != "yes" {
		t.Errorf("echo = %+v", e)
	}

	if resp, body := get(t, "GET", ts.URL+"/bytes/1000003"); resp.StatusCode != 200 || len(body) != 1000003 || !strings.HasPrefix(body, "inventory\n") {
		t.Errorf("GET /bytes/1000003 = %d, %d bytes", resp.StatusCode, len(body))
	}
	for _, bad := range []string{"-1", "x", "1073741825"} {
		if resp, body := get(t, "GET", ts.URL+"/bytes/"+bad); resp.StatusCode != 400 || !strings.Contains(body, "want /bytes/N") {
			t.Errorf("GET /bytes/%s = %d %q", bad, resp.StatusCode, body)
		}
	}
}

func TestItemsWithoutRedisIsBadGateway(t *testing.T) {
	ts := newTestServer(t, config{Hostname: "pod-1", RedisAddr: "127.0.0.1:1"})
	resp, body := get(t, "GET", ts.URL+"/items")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "127.0.0.1:1") {
		t.Errorf("GET /items = %d %q", resp.StatusCode, body)
	}
	ts = newTestServer(t, config{Hostname: "pod-1"})
	if resp, body := get(t, "POST", ts.URL+"/items?name=a"); resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "REDIS_ADDR") {
		t.Errorf("POST /items without REDIS_ADDR = %d %q", resp.StatusCode, body)
	}
}

func TestItemsThroughFakeRedis(t *testing.T) {
	addr, cmds := fakeRedis(t, ":3\r\n")
	ts := newTestServer(t, config{Hostname: "pod-1", RedisAddr: addr})
	resp, body := get(t, "POST", ts.URL+"/items?name=widget")
	if resp.StatusCode != http.StatusCreated || !strings.Contains(body, `"count":3`) {
		t.Errorf("POST /items = %d %q", resp.StatusCode, body)
	}
	if got := <-cmds; strings.Join(got, " ") != "RPUSH items widget" {
		t.Errorf("redis saw %q", got)
	}
	if resp, _ := get(t, "POST", ts.URL+"/items"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST /items without name = %d", resp.StatusCode)
	}
}
