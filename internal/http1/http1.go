// Package http1 relays HTTP/1.x requests between connections the way both
// ends of remocal need it: the agent routing a peer's requests to the
// application or to a client, and the client handing a stolen request to the
// developer's local server.
//
// Requests and responses are re-framed by net/http's reader and writer, so
// bodies of any framing (length, chunked, close-delimited) survive, while
// header order and spelling are preserved as net/http preserves them.
package http1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/remocal/remocal/internal/relay"
)

// Conn is a connection with buffered reading and writing. Writes must be
// flushed; Exchange does.
type Conn struct {
	net.Conn
	R *bufio.Reader
	W *bufio.Writer
}

// NewConn wraps c. A nil c makes a sink that discards what is written, for
// responses nobody wants (mirrored requests).
func NewConn(c net.Conn) *Conn {
	if c == nil {
		return &Conn{W: bufio.NewWriter(io.Discard)}
	}
	return &Conn{Conn: c, R: bufio.NewReaderSize(c, 32<<10), W: bufio.NewWriterSize(c, 16<<10)}
}

// Read reads through the buffer, so bytes already peeked are not lost.
func (c *Conn) Read(p []byte) (int, error) { return c.R.Read(p) }

// CloseWrite half-closes the underlying connection.
func (c *Conn) CloseWrite() error { return relay.CloseWrite(c.Conn) }

// NoResponseError means the upstream gave no response at all, so the caller
// may still answer the downstream itself (502) without corrupting it.
type NoResponseError struct{ Err error }

func (e *NoResponseError) Error() string { return "no response: " + e.Err.Error() }
func (e *NoResponseError) Unwrap() error { return e.Err }

// Result says what Exchange left behind.
type Result struct {
	// UpReusable: up may carry another request.
	UpReusable bool
	// DownKeepAlive: down may deliver another request.
	DownKeepAlive bool
}

// KeepDefaultUserAgent stops Request.Write from adding Go's User-Agent to a
// request that had none: a relay must not change what the server sees.
func KeepDefaultUserAgent(req *http.Request) {
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""}
	}
}

// Exchange sends req over up and relays the response to down, including
// interim 1xx responses. The request is written while the response is being
// read: a server may answer before reading the whole body, and a client that
// sent "Expect: 100-continue" sends the body only after the interim response.
// A 101 Switching Protocols turns both connections into a raw byte relay
// that Exchange runs to its end.
func Exchange(down, up *Conn, req *http.Request) (Result, error) {
	KeepDefaultUserAgent(req)
	wrote := make(chan error, 1)
	go func() {
		err := req.Write(up.W)
		if ferr := up.W.Flush(); err == nil {
			err = ferr
		}
		wrote <- err
	}()
	answered := false
	for {
		resp, err := http.ReadResponse(up.R, req)
		if err != nil {
			relay.Abort(up.Conn)
			<-wrote
			if !answered {
				return Result{}, &NoResponseError{Err: err}
			}
			return Result{}, err
		}
		answered = true
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			err := writeResponse(down, resp)
			<-wrote
			if err == nil && down.Conn != nil {
				// The connection now speaks another protocol (WebSocket,
				// ...): from here on it is plain bytes both ways.
				relay.Conns(down, up)
			}
			return Result{}, err
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			if err := writeResponse(down, resp); err != nil {
				relay.Abort(up.Conn)
				<-wrote
				return Result{}, err
			}
			continue
		}
		werr := writeResponse(down, resp)
		resp.Body.Close()
		reqErr := <-wrote
		res := Result{
			UpReusable:    werr == nil && reqErr == nil && !resp.Close && !req.Close,
			DownKeepAlive: werr == nil && !resp.Close && !req.Close,
		}
		if werr != nil {
			return res, fmt.Errorf("relay response: %w", werr)
		}
		return res, nil
	}
}

func writeResponse(down *Conn, resp *http.Response) error {
	if err := resp.Write(down.W); err != nil {
		return err
	}
	return down.W.Flush()
}

// WriteError answers with a short plain-text error and closes the exchange
// (Connection: close).
func WriteError(w *Conn, code int, msg string) error {
	fmt.Fprintf(w.W, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n",
		code, http.StatusText(code), len(msg)+1, msg)
	return w.W.Flush()
}

// Replayable reports whether req can be sent again after a connection
// failed without any response: it has no body to have been consumed. Kept
// alive connections may be closed by the server just as a request goes out;
// such requests are retried on a fresh connection, as net/http's Transport
// does.
func Replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody
}

// IsNoResponse reports whether err is a NoResponseError.
func IsNoResponse(err error) bool {
	var nr *NoResponseError
	return errors.As(err, &nr)
}
