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
	"time"

	"github.com/remocal/remocal/internal/relay"
)

// Limits on what a peer or a target can make remocal hold while it reads a
// message head (request line or status line, and headers): net/http's
// reader keeps a head in memory whole, so without them a head that never
// ends would grow until the process runs out of memory.
const (
	// MaxHeadBytes bounds a request or response head. 1 MiB is net/http's
	// own server default (http.DefaultMaxHeaderBytes): what Go servers, the
	// usual applications behind remocal, accept anyway, and far above the
	// 8–64 KiB that common proxies and Ingress controllers allow.
	MaxHeadBytes = 1 << 20
	// HeadTimeout bounds the time from the first byte of a request to the
	// end of its head, against clients that trickle a head byte by byte to
	// hold the relay open. 30 s is generous for any real client (a head is
	// sent in one go) and still closes such connections; waiting for a
	// request's first byte stays unbounded, as keep-alive idleness is the
	// application's and its clients' business.
	HeadTimeout = 30 * time.Second
)

// ErrHeadTooLarge is wrapped by ReadRequest and Exchange errors when a head
// exceeds MaxHeadBytes.
var ErrHeadTooLarge = errors.New("HTTP message head larger than 1 MiB")

// ErrHeadTimeout is wrapped by ReadRequest's error when a request head did
// not arrive within HeadTimeout of its first byte.
var ErrHeadTimeout = errors.New("HTTP request head not complete within 30s of its first byte")

// Conn is a connection with buffered reading and writing. Writes must be
// flushed; Exchange does.
type Conn struct {
	net.Conn
	R *bufio.Reader
	W *bufio.Writer

	// lim sits between Conn and R in connections made by NewConn, so that
	// heads can be read with a bound; nil otherwise.
	lim *headLimiter
}

// NewConn wraps c. A nil c makes a sink that discards what is written, for
// responses nobody wants (mirrored requests).
func NewConn(c net.Conn) *Conn {
	if c == nil {
		return &Conn{W: bufio.NewWriter(io.Discard)}
	}
	lim := &headLimiter{r: c, n: -1}
	return &Conn{Conn: c, R: bufio.NewReaderSize(lim, 32<<10), W: bufio.NewWriterSize(c, 16<<10), lim: lim}
}

// headLimiter passes reads through, or at most n bytes while n >= 0 and
// then errHeadLimit.
type headLimiter struct {
	r io.Reader
	n int64
}

var errHeadLimit = errors.New("head limit reached")

func (l *headLimiter) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errHeadLimit
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// limitHead runs read (which reads one head from c.R) with at most maxBytes more
// bytes read from the connection (what R has buffered already comes on
// top, at most its 32 KiB). Connections not made by NewConn are read
// without the bound.
func (c *Conn) limitHead(maxBytes int64, read func() error) error {
	if c.lim == nil {
		return read()
	}
	c.lim.n = maxBytes
	err := read()
	exhausted := c.lim.n == 0
	c.lim.n = -1
	// net/textproto may report the cut-off line as malformed instead of
	// passing errHeadLimit on, hence the check of the limiter itself.
	if err != nil && (exhausted || errors.Is(err, errHeadLimit)) {
		return fmt.Errorf("%w: %w", ErrHeadTooLarge, err)
	}
	return err
}

// ReadRequest reads the next request from the connection, bounding its
// head by MaxHeadBytes and HeadTimeout (see there). The body is left to
// read from c.R, without those bounds.
func (c *Conn) ReadRequest() (*http.Request, error) {
	return c.readRequest(MaxHeadBytes, HeadTimeout)
}

func (c *Conn) readRequest(maxBytes int64, timeout time.Duration) (*http.Request, error) {
	// Waiting for the request to start is not bounded (see HeadTimeout).
	if _, err := c.R.Peek(1); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	var req *http.Request
	err := c.limitHead(maxBytes, func() (err error) {
		req, err = http.ReadRequest(c.R)
		return err
	})
	if derr := c.SetReadDeadline(time.Time{}); err == nil && derr != nil {
		return nil, derr
	}
	// As above, the timeout may come back as a malformed partial line.
	ne, isNetErr := errors.AsType[net.Error](err)
	if err != nil && !errors.Is(err, ErrHeadTooLarge) && (isNetErr && ne.Timeout() || !time.Now().Before(deadline)) {
		err = fmt.Errorf("%w: %w", ErrHeadTimeout, err)
	}
	return req, err
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
	write := func() error {
		err := req.Write(up.W)
		if ferr := up.W.Flush(); err == nil {
			err = ferr
		}
		return err
	}
	if req.Body == nil || req.Body == http.NoBody {
		// Only a head to write: nothing to wait for downstream, and
		// servers read a head before they answer, so writing it first
		// saves a goroutine and its hand-offs per request.
		wrote <- write()
	} else {
		// A body that breaks off (its sender went away) would leave up
		// waiting for the rest, and this side for up's answer: cut up.
		body := &bodyReader{ReadCloser: req.Body}
		req.Body = body
		go func() {
			err := write()
			if body.failed {
				relay.Abort(up.Conn)
			}
			wrote <- err
		}()
	}
	answered := false
	for {
		var resp *http.Response
		err := up.limitHead(MaxHeadBytes, func() (err error) {
			resp, err = http.ReadResponse(up.R, req)
			return err
		})
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

// bodyReader notes whether reading a request body failed other than by
// its end.
type bodyReader struct {
	io.ReadCloser
	failed bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.failed = true
	}
	return n, err
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
