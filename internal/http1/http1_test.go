package http1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// upstream runs a raw server script on the far end of up: it reads one
// request and writes reply.
func upstream(t *testing.T, serve func(r *bufio.Reader, w net.Conn)) *Conn {
	t.Helper()
	near, far := tcpPair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(bufio.NewReader(far), far)
	}()
	t.Cleanup(func() { far.Close(); <-done })
	return NewConn(near)
}

// exchangeOnce reads a request written by the client side of down and runs
// Exchange; it returns what the client received.
func exchangeOnce(t *testing.T, rawReq string, up *Conn) (string, Result, error) {
	t.Helper()
	client, server := tcpPair(t)
	down := NewConn(server)
	io.WriteString(client, rawReq)
	req, err := http.ReadRequest(down.R)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Exchange(down, up, req)
	server.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(client)
	return string(got), res, err
}

func readReq(t *testing.T, r *bufio.Reader) *http.Request {
	req, err := http.ReadRequest(r)
	if err != nil {
		t.Error(err)
		return nil
	}
	io.Copy(io.Discard, req.Body)
	return req
}

func TestExchangeKeepAlive(t *testing.T) {
	var seenUA []string
	up := upstream(t, func(r *bufio.Reader, w net.Conn) {
		req := readReq(t, r)
		seenUA = req.Header.Values("User-Agent")
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-From: up\r\n\r\nhi")
	})
	got, res, err := exchangeOnce(t, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", up)
	if err != nil || !res.UpReusable || !res.DownKeepAlive {
		t.Fatalf("result %+v, %v", res, err)
	}
	if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.Contains(got, "X-From: up") || !strings.HasSuffix(got, "\r\n\r\nhi") {
		t.Errorf("client got %q", got)
	}
	if len(seenUA) > 1 || (len(seenUA) == 1 && seenUA[0] != "") {
		t.Errorf("relay added a User-Agent: %q", seenUA)
	}
}

func TestExchangeChunkedAndClose(t *testing.T) {
	up := upstream(t, func(r *bufio.Reader, w net.Conn) {
		readReq(t, r)
		io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
	})
	got, res, err := exchangeOnce(t, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz", up)
	if err != nil || res.UpReusable || res.DownKeepAlive {
		t.Fatalf("Connection: close must end both sides: %+v, %v", res, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "abcde" {
		t.Errorf("body = %q", body)
	}
}

func TestExchangeInterimResponses(t *testing.T) {
	up := upstream(t, func(r *bufio.Reader, w net.Conn) {
		req, err := http.ReadRequest(r)
		if err != nil {
			t.Error(err)
			return
		}
		io.WriteString(w, "HTTP/1.1 100 Continue\r\n\r\n")
		body, _ := io.ReadAll(req.Body)
		io.WriteString(w, "HTTP/1.1 201 Created\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+string(body))
	})
	client, server := tcpPair(t)
	down := NewConn(server)
	// The client sends the body only after the interim response, as curl
	// does with Expect: 100-continue.
	io.WriteString(client, "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	go func() {
		r := bufio.NewReader(client)
		line, _ := r.ReadString('\n')
		if strings.Contains(line, "100 Continue") {
			io.WriteString(client, "data")
		}
		r.ReadString('\n')
	}()
	req, err := http.ReadRequest(down.R)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Exchange(down, up, req)
	if err != nil || !res.UpReusable {
		t.Fatalf("exchange with 100-continue: %+v, %v", res, err)
	}
}

func TestExchangeUpgradeRelaysRawBytes(t *testing.T) {
	up := upstream(t, func(r *bufio.Reader, w net.Conn) {
		readReq(t, r)
		io.WriteString(w, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(w, r) // echo until the client is done
		w.(*net.TCPConn).CloseWrite()
	})
	client, server := tcpPair(t)
	down := NewConn(server)
	io.WriteString(client, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	req, err := http.ReadRequest(down.R)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Exchange(down, up, req)
		done <- err
	}()
	io.WriteString(client, "ping-pong")
	client.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(client)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 101 Switching Protocols\r\n") || !strings.HasSuffix(string(got), "\r\n\r\nping-pong") {
		t.Errorf("client got %q", got)
	}
}

func TestExchangeNoResponse(t *testing.T) {
	up := upstream(t, func(r *bufio.Reader, w net.Conn) {
		readReq(t, r)
		w.Close()
	})
	got, _, err := exchangeOnce(t, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", up)
	if !IsNoResponse(err) || got != "" {
		t.Fatalf("want NoResponseError and nothing written, got %v and %q", err, got)
	}
}

func TestWriteErrorAndSink(t *testing.T) {
	up := upstream(t, func(r *bufio.Reader, w net.Conn) {
		readReq(t, r)
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
	})
	req, _ := http.NewRequest("GET", "http://a/", nil)
	if res, err := Exchange(NewConn(nil), up, req); err != nil || !res.UpReusable {
		t.Fatalf("exchange into a sink: %+v, %v", res, err)
	}
	client, server := tcpPair(t)
	WriteError(NewConn(server), http.StatusBadGateway, "remocal: nope")
	server.Close()
	resp, err := http.ReadResponse(bufio.NewReader(client), nil)
	if err != nil || resp.StatusCode != 502 || !resp.Close {
		t.Fatalf("WriteError produced %+v, %v", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "remocal: nope\n" {
		t.Errorf("body %q", body)
	}
}

// TestExchangeCutsUpstreamWhenTheBodyBreaksOff: a downstream that leaves
// in the middle of a request body must not leave the upstream waiting for
// the rest (and Exchange waiting for the upstream's answer): the upstream
// sees its connection end.
func TestExchangeCutsUpstreamWhenTheBodyBreaksOff(t *testing.T) {
	upEnded := make(chan error, 1)
	up := upstream(t, func(r *bufio.Reader, w net.Conn) {
		req, err := http.ReadRequest(r)
		if err != nil {
			upEnded <- err
			return
		}
		_, err = io.ReadAll(req.Body) // waits for all 1000 bytes
		upEnded <- err
	})
	client, server := tcpPair(t)
	down := NewConn(server)
	io.WriteString(client, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npart of it")
	req, err := http.ReadRequest(down.R)
	if err != nil {
		t.Fatal(err)
	}
	client.Close()
	done := make(chan error, 1)
	go func() {
		_, err := Exchange(down, up, req)
		done <- err
	}()
	select {
	case err := <-upEnded:
		if err == nil {
			t.Fatal("the upstream read a whole body of which the downstream sent 10 of 1000 bytes")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream still waits for the rest of a body whose sender left")
	}
	select {
	case err := <-done:
		if !IsNoResponse(err) {
			t.Errorf("Exchange = %v, want a NoResponseError", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Exchange still waits for an answer from the upstream it cut")
	}
}
