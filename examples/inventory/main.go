// Command inventory is the example "remote" service of remocal's demos and
// integration tests. Everything it reports comes from its environment: the
// greeting and Redis address from env variables, the config from a file, the
// Redis host from DNS and the hostname from the UTS namespace. Run locally it
// shows the developer's machine; run under remocal it shows the pod's.
//
// Environment:
//
//	LISTEN_ADDR   address to serve on (default ":8080")
//	SERVICE_NAME  name reported by GET /
//	GREETING      text reported by GET /
//	REDIS_ADDR    host:port of Redis backing /items
//	API_TOKEN     secret the demo shows is read from the pod
//	CONFIG_PATH   file served by GET /config (default /etc/inventory/config.json)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

const (
	defaultListenAddr = ":8080"
	defaultConfigPath = "/etc/inventory/config.json"
	itemsKey          = "items"
)

type config struct {
	ServiceName string
	Greeting    string
	RedisAddr   string
	APIToken    string
	ConfigPath  string
	Hostname    string
}

func configFromEnv() config {
	c := config{
		ServiceName: os.Getenv("SERVICE_NAME"),
		Greeting:    os.Getenv("GREETING"),
		RedisAddr:   os.Getenv("REDIS_ADDR"),
		APIToken:    os.Getenv("API_TOKEN"),
		ConfigPath:  os.Getenv("CONFIG_PATH"),
	}
	if c.ConfigPath == "" {
		c.ConfigPath = defaultConfigPath
	}
	if c.ServiceName == "" {
		c.ServiceName = "inventory"
	}
	h, err := os.Hostname()
	if err != nil {
		h = "unknown-host"
	}
	c.Hostname = h
	return c
}

type server struct {
	cfg   config
	redis *redisClient
}

func newServer(cfg config) *server {
	return &server{cfg: cfg, redis: &redisClient{addr: cfg.RedisAddr, timeout: 5 * time.Second}}
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.root)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok"))
	})
	mux.HandleFunc("GET /config", s.config)
	mux.HandleFunc("GET /items", s.listItems)
	mux.HandleFunc("POST /items", s.addItem)
	mux.HandleFunc("/echo", s.echo)
	mux.HandleFunc("GET /bytes/{n}", bulk)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Set before routing so that errors and 404s also say which
		// instance answered: that is what traffic tests look at.
		w.Header().Set("X-Served-By", s.cfg.Hostname)
		log.Printf("%s %s", r.Method, r.URL.Path)
		mux.ServeHTTP(w, r)
	})
}

func (s *server) root(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%s on %s: %s\n", s.cfg.ServiceName, s.cfg.Hostname, s.cfg.Greeting)
}

func (s *server) config(w http.ResponseWriter, r *http.Request) {
	// Read on every request so the demo can show edits to the pod's file.
	b, err := os.ReadFile(s.cfg.ConfigPath)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, os.ErrNotExist) {
			status = http.StatusNotFound
		}
		http.Error(w, fmt.Sprintf("read config: %v", err), status)
		return
	}
	if filepath.Ext(s.cfg.ConfigPath) == ".json" {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	w.Write(b)
}

func (s *server) listItems(w http.ResponseWriter, r *http.Request) {
	v, err := s.redis.do(r.Context(), "LRANGE", itemsKey, "0", "-1")
	if err != nil {
		http.Error(w, fmt.Sprintf("list items: %v", err), http.StatusBadGateway)
		return
	}
	if v.Kind != '*' {
		http.Error(w, fmt.Sprintf("list items: unexpected redis reply type %q", v.Kind), http.StatusBadGateway)
		return
	}
	names := make([]string, 0, len(v.Array))
	for _, e := range v.Array {
		names = append(names, e.Str)
	}
	writeJSON(w, http.StatusOK, names)
}

func (s *server) addItem(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		http.Error(w, "missing ?name=", http.StatusBadRequest)
		return
	}
	v, err := s.redis.do(r.Context(), "RPUSH", itemsKey, name)
	if err != nil {
		http.Error(w, fmt.Sprintf("add item: %v", err), http.StatusBadGateway)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"name": name, "count": v.Int})
}

type echoReply struct {
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	Query      string              `json:"query,omitempty"`
	Host       string              `json:"host"`
	RemoteAddr string              `json:"remote_addr"`
	Headers    map[string][]string `json:"headers"`
	ServedBy   string              `json:"served_by"`
}

func (s *server) echo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, echoReply{
		Method:     r.Method,
		Path:       r.URL.Path,
		Query:      r.URL.RawQuery,
		Host:       r.Host,
		RemoteAddr: r.RemoteAddr,
		Headers:    r.Header,
		ServedBy:   s.cfg.Hostname,
	})
}

// maxBulk bounds GET /bytes/{n}.
const maxBulk = 1 << 30

// bulk answers n bytes: a download whose speed measures the path between
// the client and this service (docs/performance.md, Kubernetes).
func bulk(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
	if err != nil || n < 0 || n > maxBulk {
		http.Error(w, fmt.Sprintf("want /bytes/N with N a byte count up to %d", maxBulk), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	chunk := bytes.Repeat([]byte("inventory\n"), 256<<10/10)
	for n > 0 {
		part := chunk[:min(int64(len(chunk)), n)]
		if _, err := w.Write(part); err != nil {
			return
		}
		n -= int64(len(part))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("inventory: ")
	addr := os.Getenv("LISTEN_ADDR")
	if addr == "" {
		addr = defaultListenAddr
	}
	cfg := configFromEnv()
	if err := run(addr, cfg); err != nil {
		log.Fatal(err)
	}
}

func run(addr string, cfg config) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: newServer(cfg).handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("%s serving on %s as %s (redis %q, config %s)", cfg.ServiceName, l.Addr(), cfg.Hostname, cfg.RedisAddr, cfg.ConfigPath)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal now kills the process the default way
	log.Printf("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
