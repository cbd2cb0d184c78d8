package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// countingConn counts the bytes read from the connection itself.
type countingConn struct {
	net.Conn
	n *int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	*c.n += int64(n)
	return n, err
}

// SetReadDeadline ignores net.Pipe's refusal once the writer has closed
// its end; a TCP connection whose peer sent FIN takes deadlines.
func (c countingConn) SetReadDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		return err
	}
	return nil
}

// FuzzReadRequest: reading a request head never takes more than its bound
// from the connection beyond the first byte; within the bound it reads
// exactly what net/http reads from the same bytes (same request, or an
// error for both); a head that net/http would read but that needs more
// than the bound fails as ErrHeadTooLarge or net/http's own error, never
// as a request.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: app\r\nAccept: */*\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nUser-Agent: kube-probe/1.34\r\n\r\n",
		"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST /api HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"GET /a HTTP/1.0\n\n",
		"GET / HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 3000) + "\r\n\r\n",
		"GET / HTTP/1.1\r\nX-Endless: " + strings.Repeat("b", 5000),
		"GET / HTTP/1.1\r\n Folded: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
		"G",
	} {
		f.Add([]byte(s), uint16(1024))
		f.Add([]byte(s), uint16(40))
	}
	f.Fuzz(func(t *testing.T, data []byte, bound uint16) {
		if len(data) == 0 {
			return
		}
		maxBytes := int64(bound % 8192)

		// What net/http reads from the bytes alone, and how much of them.
		plainSrc := bytes.NewReader(data)
		plainBuf := bufio.NewReaderSize(plainSrc, 32<<10)
		want, wantErr := http.ReadRequest(plainBuf)
		headLen := int64(len(data)-plainSrc.Len()) - int64(plainBuf.Buffered())

		client, server := net.Pipe()
		defer server.Close()
		go func() {
			// The first byte alone, so that the bound covers the rest.
			if _, err := client.Write(data[:1]); err == nil {
				client.Write(data[1:])
			}
			client.Close()
		}()
		var read int64
		c := NewConn(countingConn{server, &read})
		if _, err := c.R.Peek(1); err != nil {
			t.Fatal(err)
		}
		if read != 1 {
			t.Fatalf("the first peek read %d bytes", read)
		}
		got, err := c.readRequest(maxBytes, 10*time.Second)
		if read-1 > maxBytes {
			t.Fatalf("read %d bytes past the first with a bound of %d", read-1, maxBytes)
		}
		if err == nil && wantErr != nil {
			t.Fatalf("%q: read a request net/http refuses (%v)", data, wantErr)
		}
		if err == nil && headLen-1 > maxBytes {
			t.Fatalf("%q: read a %d-byte head with a bound of %d", data, headLen, maxBytes)
		}
		if wantErr == nil && headLen-1 <= maxBytes {
			if err != nil {
				t.Fatalf("%q: a %d-byte head within the bound %d failed: %v", data, headLen, maxBytes, err)
			}
			if got.Method != want.Method || got.URL.String() != want.URL.String() || got.Proto != want.Proto ||
				got.Host != want.Host || got.ContentLength != want.ContentLength ||
				!reflect.DeepEqual(got.Header, want.Header) || !reflect.DeepEqual(got.TransferEncoding, want.TransferEncoding) {
				t.Fatalf("%q: read %+v, net/http reads %+v", data, got, want)
			}
		}
		if wantErr == nil && headLen-1 > maxBytes && err != nil && !errors.Is(err, ErrHeadTooLarge) {
			// Cut off by the bound, the reader must say so rather than
			// call a well-formed request malformed.
			t.Fatalf("%q: a %d-byte head over the bound %d failed as %v", data, headLen, maxBytes, err)
		}
		if errors.Is(err, ErrHeadTimeout) {
			t.Fatalf("%q: timed out on bytes that were all there: %v", data, err)
		}
	})
}
