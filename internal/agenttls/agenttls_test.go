package agenttls

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// serve answers one TLS connection on a loopback listener with "ok".
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	return l.Addr().String()
}

func serverConfig(t *testing.T, certPEM, keyPEM []byte) *tls.Config {
	t.Helper()
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(cf, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ServerConfig(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestPinnedCertificateOnly(t *testing.T) {
	cert, key, err := New("agent-a")
	if err != nil {
		t.Fatal(err)
	}
	other, otherKey, err := New("agent-b")
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := PinnedConfig(cert)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(addr string) ([]byte, error) {
		d := tls.Dialer{Config: pinned}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return io.ReadAll(c)
	}
	got, err := dial(serve(t, serverConfig(t, cert, key)))
	if err != nil || string(got) != "ok" {
		t.Fatalf("the pinned agent: %q, %v", got, err)
	}
	if _, err := dial(serve(t, serverConfig(t, other, otherKey))); !errors.Is(err, ErrNotPinned) {
		t.Fatalf("an agent with another certificate: err = %v, want ErrNotPinned", err)
	}
}

func TestPinnedConfigRefusesGarbage(t *testing.T) {
	if _, err := PinnedConfig([]byte("not a certificate")); err == nil {
		t.Fatal("a non-PEM pin was accepted")
	}
}

func TestServerConfigNamesTheFiles(t *testing.T) {
	_, err := ServerConfig("/nonexistent/tls.crt", "/nonexistent/tls.key")
	var pe *os.PathError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a path error naming the file", err)
	}
}
