package http1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestReadRequestHeadTooLarge: a head that never ends is cut off at the
// limit (net/http alone would keep reading it into memory), and a normal
// request on a fresh connection still reads.
func TestReadRequestHeadTooLarge(t *testing.T) {
	client, server := tcpPair(t)
	go func() {
		io.WriteString(client, "GET / HTTP/1.1\r\nHost: x\r\nX-Endless: ")
		chunk := strings.Repeat("a", 64<<10)
		for range 64 { // 4 MiB, four times the limit; stops when the reader closes
			if _, err := io.WriteString(client, chunk); err != nil {
				return
			}
		}
	}()
	down := NewConn(server)
	_, err := down.readRequest(1<<20, 10*time.Second)
	if !errors.Is(err, ErrHeadTooLarge) {
		t.Fatalf("ReadRequest of an endless head: %v, want ErrHeadTooLarge", err)
	}
	server.Close()

	client, server = tcpPair(t)
	io.WriteString(client, "POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	req, err := NewConn(server).ReadRequest()
	if err != nil {
		t.Fatal(err)
	}
	// The body is read without the head's bound.
	if body, _ := io.ReadAll(req.Body); req.URL.Path != "/ok" || string(body) != "hello" {
		t.Errorf("got %s %q", req.URL.Path, body)
	}
}

// TestReadRequestHeadTrickled: a head that trickles in is cut off at the
// timeout counted from its first byte; the wait for the first byte itself
// is not part of it.
func TestReadRequestHeadTrickled(t *testing.T) {
	client, server := tcpPair(t)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		io.WriteString(client, "GET / HTTP/1.1\r\n")
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := io.WriteString(client, "X"); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	_, err := NewConn(server).readRequest(1<<20, 200*time.Millisecond)
	if !errors.Is(err, ErrHeadTimeout) {
		t.Fatalf("ReadRequest of a trickled head: %v, want ErrHeadTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cut off after %v", d)
	}
}

// TestExchangeResponseHeadTooLarge: an application answering with an
// endless head does not make the relay hold it.
func TestExchangeResponseHeadTooLarge(t *testing.T) {
	up := upstream(t, func(r *bufio.Reader, w net.Conn) {
		readReq(t, r)
		io.WriteString(w, "HTTP/1.1 200 OK\r\nX-Endless: ")
		chunk := strings.Repeat("a", 64<<10)
		for range 32 { // 2 MiB
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	})
	_, _, err := exchangeOnce(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", up)
	if !errors.Is(err, ErrHeadTooLarge) || !IsNoResponse(err) {
		t.Fatalf("Exchange with an endless response head: %v, want a no-response ErrHeadTooLarge", err)
	}
}
