package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// The service only needs a handful of Redis commands, and the example must
// build with the standard library alone, so it speaks RESP2 itself.

// respValue is one decoded RESP2 reply.
type respValue struct {
	Kind  byte // '+' simple string, '-' error, ':' integer, '$' bulk string, '*' array
	Str   string
	Int   int64
	Array []respValue
	Null  bool // a null bulk string or null array
}

// Limits that keep a confused or hostile peer from making us allocate
// unbounded memory; Redis itself caps bulk strings at 512 MiB, far more than
// this service ever stores.
const (
	maxBulkLen  = 16 << 20
	maxArrayLen = 1 << 20
	maxDepth    = 16
	maxLineLen  = 64 << 10
)

// writeCommand encodes a command the way clients must send it: an array of
// bulk strings, which is binary safe whatever the arguments contain.
func writeCommand(w io.Writer, args ...string) error {
	if len(args) == 0 {
		return errors.New("resp: empty command")
	}
	buf := make([]byte, 0, 64)
	buf = append(buf, '*')
	buf = strconv.AppendInt(buf, int64(len(args)), 10)
	buf = append(buf, '\r', '\n')
	for _, a := range args {
		buf = append(buf, '$')
		buf = strconv.AppendInt(buf, int64(len(a)), 10)
		buf = append(buf, '\r', '\n')
		buf = append(buf, a...)
		buf = append(buf, '\r', '\n')
	}
	_, err := w.Write(buf)
	return err
}

// readValue decodes one reply.
func readValue(r *bufio.Reader) (respValue, error) {
	return readValueDepth(r, 0)
}

func readValueDepth(r *bufio.Reader, depth int) (respValue, error) {
	if depth > maxDepth {
		return respValue{}, errors.New("resp: reply nested too deeply")
	}
	line, err := readLine(r)
	if err != nil {
		return respValue{}, err
	}
	if len(line) == 0 {
		return respValue{}, errors.New("resp: empty reply line")
	}
	kind, rest := line[0], line[1:]
	switch kind {
	case '+', '-':
		return respValue{Kind: kind, Str: rest}, nil
	case ':':
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return respValue{}, fmt.Errorf("resp: bad integer %q", rest)
		}
		return respValue{Kind: kind, Int: n}, nil
	case '$':
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || n < -1 || n > maxBulkLen {
			return respValue{}, fmt.Errorf("resp: bad bulk length %q", rest)
		}
		if n == -1 {
			return respValue{Kind: kind, Null: true}, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return respValue{}, fmt.Errorf("resp: short bulk string: %w", unexpectedEOF(err))
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return respValue{}, errors.New("resp: bulk string not terminated by CRLF")
		}
		return respValue{Kind: kind, Str: string(buf[:n])}, nil
	case '*':
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || n < -1 || n > maxArrayLen {
			return respValue{}, fmt.Errorf("resp: bad array length %q", rest)
		}
		if n == -1 {
			return respValue{Kind: kind, Null: true}, nil
		}
		v := respValue{Kind: kind, Array: make([]respValue, 0, min(n, 1024))}
		for i := int64(0); i < n; i++ {
			e, err := readValueDepth(r, depth+1)
			if err != nil {
				return respValue{}, err
			}
			v.Array = append(v.Array, e)
		}
		return v, nil
	default:
		return respValue{}, fmt.Errorf("resp: unknown reply type %q", kind)
	}
}

// readLine reads up to CRLF and returns the line without it.
func readLine(r *bufio.Reader) (string, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLineLen {
			return "", errors.New("resp: reply line too long")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if len(line) > 0 {
				return "", fmt.Errorf("resp: truncated reply: %w", unexpectedEOF(err))
			}
			return "", err
		}
		break
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "", errors.New("resp: reply line not terminated by CRLF")
	}
	return string(line[:len(line)-2]), nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// redisError is an error reply from the server, as opposed to a transport
// failure; callers report both the same way but tests tell them apart.
type redisError string

func (e redisError) Error() string { return "redis: " + string(e) }

// redisClient opens a connection per command. The service handles a few
// requests per second in a demo, and a fresh connection means a restarted or
// moved Redis (or a changed DNS answer) is picked up without pool logic.
type redisClient struct {
	addr    string
	timeout time.Duration
	dialer  net.Dialer
}

func (c *redisClient) do(ctx context.Context, args ...string) (respValue, error) {
	if c.addr == "" {
		return respValue{}, errors.New("REDIS_ADDR is not set")
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	conn, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return respValue{}, fmt.Errorf("connect to redis at %s: %w", c.addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Unblock the read if the request is cancelled without a deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := writeCommand(conn, args...); err != nil {
		return respValue{}, fmt.Errorf("send %s to redis at %s: %w", args[0], c.addr, err)
	}
	v, err := readValue(bufio.NewReader(conn))
	if err != nil {
		return respValue{}, fmt.Errorf("read %s reply from redis at %s: %w", args[0], c.addr, err)
	}
	if v.Kind == '-' {
		return v, redisError(v.Str)
	}
	return v, nil
}
