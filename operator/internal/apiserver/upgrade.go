package apiserver

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/remocal/remocal/protocol/operator"
)

// switching is the whole 101 response: nothing else is said before the
// connection carries the wire protocol.
const switching = "HTTP/1.1 101 Switching Protocols\r\n" +
	"Connection: Upgrade\r\n" +
	"Upgrade: " + operator.UpgradeProtocol + "\r\n\r\n"

// upgrade takes the connection over from the HTTP server and answers 101.
func upgrade(w http.ResponseWriter) (net.Conn, error) {
	rc := http.NewResponseController(w)
	conn, rw, err := rc.Hijack()
	if errors.Is(err, http.ErrNotSupported) {
		return nil, errors.New("this connection cannot be upgraded (HTTP/2?); targets/portforward needs HTTP/1.1")
	}
	if err != nil {
		return nil, fmt.Errorf("take over the connection: %w", err)
	}
	// The HTTP server may have set deadlines for the request; the session
	// lives as long as the client keeps it.
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clear the connection's deadline: %w", err)
	}
	if _, err := rw.WriteString(switching); err != nil {
		conn.Close()
		return nil, fmt.Errorf("answer 101: %w", err)
	}
	if err := rw.Flush(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("answer 101: %w", err)
	}
	if rw.Reader.Buffered() == 0 {
		return conn, nil
	}
	// The client may have sent its first bytes right behind the
	// request; they are in the server's read buffer.
	return &bufferedConn{Conn: conn, r: rw.Reader}, nil
}

// bufferedConn reads what the HTTP server had buffered, then the
// connection itself.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}
