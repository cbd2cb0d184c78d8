// Package framing is the daemon's JSON-RPC framing: LSP "Content-Length"
// headers with a size limit, malformed messages answered instead of fatal.
// It is its own package so that it can be fuzzed without the daemon.
package framing

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"go.lsp.dev/jsonrpc2"
)

// DefaultMaxMessage bounds one JSON-RPC message. No remocal message comes
// near it; a client that sends more is broken or hostile.
const DefaultMaxMessage = 16 << 20

// stream is LSP "Content-Length" framing with a size limit and with
// parse errors answered rather than fatal: jsonrpc2's own header stream
// accepts frames up to 1 GiB and ends the connection on malformed JSON.
// A malformed but well-framed message gets a JSON-RPC parse error (id null)
// and the connection goes on; a frame that is too large or a broken header
// gets an error response and then the connection closes, since the byte
// stream cannot be resynchronised.
type stream struct {
	rwc io.ReadWriteCloser
	r   *bufio.Reader
	max int

	wmu sync.Mutex
}

// NewStream frames messages on rwc; max bounds one message (0: DefaultMaxMessage).
func NewStream(rwc io.ReadWriteCloser, max int) jsonrpc2.Stream {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	return &stream{rwc: rwc, r: bufio.NewReaderSize(rwc, 64<<10), max: max}
}

// errFraming marks errors after which the stream is out of sync.
var errFraming = errors.New("jsonrpc framing error")

func (s *stream) Read(ctx context.Context) (jsonrpc2.Message, int64, error) {
	for {
		length, err := s.readHeader()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				s.writeError(jsonrpc2.NewError(jsonrpc2.ParseError, err.Error()))
			}
			return nil, 0, err
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(s.r, body); err != nil {
			return nil, 0, err
		}
		msg, err := jsonrpc2.DecodeMessage(body)
		if err != nil {
			s.writeError(jsonrpc2.Errorf(jsonrpc2.ParseError, "malformed JSON-RPC message: %v", err))
			continue
		}
		return msg, int64(length), nil
	}
}

func (s *stream) readHeader() (int, error) {
	length := -1
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF && line != "" {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return 0, fmt.Errorf("%w: header line %q has no colon", errFraming, line)
		}
		if strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("%w: bad Content-Length %q", errFraming, value)
			}
			length = n
		}
	}
	if length < 0 {
		return 0, fmt.Errorf("%w: no Content-Length header", errFraming)
	}
	if length > s.max {
		return 0, fmt.Errorf("%w: message of %d bytes exceeds the %d byte limit", errFraming, length, s.max)
	}
	return length, nil
}

func (s *stream) Write(ctx context.Context, msg jsonrpc2.Message) (int64, error) {
	body, err := jsonrpc2.EncodeMessage(msg)
	if err != nil {
		return 0, err
	}
	return s.writeFrame(body)
}

func (s *stream) writeFrame(body []byte) (int64, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "Content-Length: %d\r\n\r\n", len(body))
	buf.Write(body)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	n, err := s.rwc.Write(buf.Bytes())
	return int64(n), err
}

// writeError answers a message that has no usable id.
func (s *stream) writeError(e *jsonrpc2.Error) {
	body := jsonrpc2.AppendResponse(nil, jsonrpc2.ID{}, nil, e)
	s.writeFrame(body)
}

func (s *stream) Close() error { return s.rwc.Close() }
