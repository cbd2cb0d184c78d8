package incoming

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/remocal/remocal/internal/http1"
)

// An HTTP/1.1 request with "Upgrade: h2c" (RFC 7540 3.2) asks to continue
// the connection in HTTP/2, the request itself becoming stream 1. On a port
// with HTTP filters the agent accepts the upgrade itself and routes every
// stream, the first included, as it routes prior-knowledge HTTP/2.
//
// net/http's HTTP/2 server has no upgrade of its own, so the agent hands it
// the connection as if the client had used prior knowledge: the client's
// preface and first SETTINGS frame, then a HEADERS frame for stream 1 made
// from the request, then the rest of what the client sends. The HEADERS
// block uses only literal fields without indexing, which leave the
// server's HPACK table as the client's own encoder expects it.
//
// A request with a body, or whose headers do not fit one frame, is served
// as plain HTTP/1.1 instead, as RFC 7540 lets a server do: the agent drops
// the upgrade headers and the client carries on in HTTP/1.1.

const (
	h2FrameHeaderLen  = 9
	h2FrameSettings   = 0x4
	h2FrameHeaders    = 0x1
	h2FlagEndStream   = 0x1
	h2FlagEndHeaders  = 0x4
	h2DefaultMaxFrame = 16384
)

var h2ClientPreface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// errNotH2Preface: after accepting an upgrade, the client did not start
// HTTP/2 as it must.
var errNotH2Preface = errors.New("the client did not send the HTTP/2 preface and SETTINGS after the h2c upgrade")

// isH2CUpgrade reports whether req asks for an h2c upgrade.
func isH2CUpgrade(req *http.Request) bool {
	return httpguts.HeaderValuesContainsToken(req.Header["Upgrade"], "h2c") &&
		httpguts.HeaderValuesContainsToken(req.Header["Connection"], "upgrade") &&
		len(req.Header["Http2-Settings"]) == 1
}

// dropUpgrade makes req a plain HTTP/1.1 request: the upgrade is refused
// by not mentioning it, as RFC 7540 3.2 allows.
func dropUpgrade(req *http.Request) {
	closeConn := httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close")
	req.Header.Del("Upgrade")
	req.Header.Del("Http2-Settings")
	req.Header.Del("Connection")
	if closeConn {
		req.Header.Set("Connection", "close")
	}
}

// upgradeH2C takes the connection to HTTP/2 for an h2c upgrade request and
// serves it to its end. It reports false, having done nothing, when the
// request cannot be upgraded (body, headers larger than one frame).
func (m *Manager) upgradeH2C(down *http1.Conn, info connInfo, req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	headers, ok := stream1Headers(req)
	if !ok {
		return false
	}
	io.WriteString(down.W, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
	if err := down.W.Flush(); err != nil {
		return true
	}
	start, err := readClientStart(down)
	if err != nil {
		m.log.Warn("h2c upgrade failed; closing the connection", "connection", info.id, "source", info.source, "err", err)
		return true
	}
	conn := &prefixedConn{Conn: down, r: io.MultiReader(bytes.NewReader(append(start, headers...)), down.R)}
	m.serveH2(conn, info, nil)
	return true
}

// readClientStart reads the client's preface and first frame, which must
// be SETTINGS, within http1.HeadTimeout.
func readClientStart(down *http1.Conn) ([]byte, error) {
	down.SetReadDeadline(time.Now().Add(http1.HeadTimeout))
	defer down.SetReadDeadline(time.Time{})
	start := make([]byte, len(h2ClientPreface)+h2FrameHeaderLen)
	if _, err := io.ReadFull(down.R, start); err != nil {
		return nil, fmt.Errorf("%w: %w", errNotH2Preface, err)
	}
	fh := start[len(h2ClientPreface):]
	length := int(fh[0])<<16 | int(fh[1])<<8 | int(fh[2])
	if !bytes.Equal(start[:len(h2ClientPreface)], h2ClientPreface) || fh[3] != h2FrameSettings || length > h2DefaultMaxFrame {
		return nil, errNotH2Preface
	}
	payload := make([]byte, length)
	if _, err := io.ReadFull(down.R, payload); err != nil {
		return nil, fmt.Errorf("%w: %w", errNotH2Preface, err)
	}
	return append(start, payload...), nil
}

// stream1Headers is the HEADERS frame (END_STREAM, END_HEADERS) of
// stream 1 carrying req; false if its block is larger than a frame.
func stream1Headers(req *http.Request) ([]byte, bool) {
	path := req.RequestURI
	if req.Method == http.MethodConnect || path == "" {
		return nil, false
	}
	block := hpackLiteral(nil, ":method", req.Method)
	block = hpackLiteral(block, ":scheme", "http")
	block = hpackLiteral(block, ":authority", req.Host)
	block = hpackLiteral(block, ":path", path)
	for name, values := range req.Header {
		if connectionSpecific(name, req.Header) {
			continue
		}
		for _, v := range values {
			if strings.EqualFold(name, "TE") && v != "trailers" {
				continue
			}
			block = hpackLiteral(block, strings.ToLower(name), v)
		}
	}
	if len(block) > h2DefaultMaxFrame {
		return nil, false
	}
	frame := make([]byte, h2FrameHeaderLen, h2FrameHeaderLen+len(block))
	frame[0], frame[1], frame[2] = byte(len(block)>>16), byte(len(block)>>8), byte(len(block))
	frame[3] = h2FrameHeaders
	frame[4] = h2FlagEndStream | h2FlagEndHeaders
	binary.BigEndian.PutUint32(frame[5:], 1)
	return append(frame, block...), true
}

// connectionSpecific reports whether a header belongs to the HTTP/1.1
// connection, which HTTP/2 forbids (RFC 9113 8.2.2).
func connectionSpecific(name string, h http.Header) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Connection", "Upgrade", "Http2-Settings", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Host":
		return true
	}
	return httpguts.HeaderValuesContainsToken(h["Connection"], name)
}

// hpackLiteral appends a "literal header field without indexing — new
// name" (RFC 7541 6.2.2) with plain (not Huffman) strings.
func hpackLiteral(dst []byte, name, value string) []byte {
	dst = append(dst, 0x00)
	dst = hpackString(dst, name)
	return hpackString(dst, value)
}

func hpackString(dst []byte, s string) []byte {
	dst = hpackInt(dst, 7, uint64(len(s)))
	return append(dst, s...)
}

// hpackInt appends n with an N-bit prefix (RFC 7541 5.1); the prefix's
// other bits (here the Huffman flag) are zero.
func hpackInt(dst []byte, prefix uint, n uint64) []byte {
	limit := uint64(1)<<prefix - 1
	if n < limit {
		return append(dst, byte(n))
	}
	dst = append(dst, byte(limit))
	for n -= limit; n >= 128; n >>= 7 {
		dst = append(dst, byte(n&127|128))
	}
	return append(dst, byte(n))
}

// prefixedConn reads r (bytes put in front of the connection's own) and
// writes to the connection.
type prefixedConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
