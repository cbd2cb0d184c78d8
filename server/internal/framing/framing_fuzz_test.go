package framing

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"go.lsp.dev/jsonrpc2"
)

// rwBuffer is a connection whose input is fixed and whose output is kept.
type rwBuffer struct {
	io.Reader
	out bytes.Buffer
}

func (b *rwBuffer) Write(p []byte) (int, error) { return b.out.Write(p) }
func (b *rwBuffer) Close() error                { return nil }

// FuzzStream feeds the daemon's JSON-RPC framing arbitrary bytes, as any
// process of the user that reaches the socket can. Reading always ends;
// no message is larger than the limit; every message read survives being
// written and read again unchanged; and whatever the daemon answers is
// well-framed JSON-RPC.
func FuzzStream(f *testing.F) {
	for _, s := range []string{
		"Content-Length: 52\r\n\r\n" + `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`[:52],
		"Content-Length: 58\r\n\r\n" + `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`,
		"Content-Length: 40\r\nContent-Type: application/vscode-jsonrpc\r\n\r\n" + `{"jsonrpc":"2.0","method":"initialized"}`,
		"Content-Length: 5\r\n\r\n{bad}Content-Length: 38\r\n\r\n" + `{"jsonrpc":"2.0","id":"a","result":1}`,
		"Content-Length: 99999999\r\n\r\n",
		"Content-Length: -1\r\n\r\n",
		"no colon\r\n\r\n",
		"\r\n",
	} {
		f.Add([]byte(s))
	}
	const max = 1 << 12
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := &rwBuffer{Reader: bytes.NewReader(data)}
		s := NewStream(conn, max)
		for range len(data) + 1 {
			msg, n, err := s.Read(context.Background())
			if err != nil {
				break
			}
			if n <= 0 || n > max {
				t.Fatalf("read a message of %d bytes with a limit of %d", n, max)
			}
			// The message survives a round trip through the framing.
			again := &rwBuffer{}
			if _, err := NewStream(again, max).Write(context.Background(), msg); err != nil {
				t.Fatalf("write %#v: %v", msg, err)
			}
			enc1, _ := jsonrpc2.EncodeMessage(msg)
			back, _, err := NewStream(&rwBuffer{Reader: &again.out}, 0).Read(context.Background())
			if err != nil {
				t.Fatalf("read back %q: %v", again.out.Bytes(), err)
			}
			if enc2, _ := jsonrpc2.EncodeMessage(back); !bytes.Equal(enc1, enc2) {
				t.Fatalf("round trip changed %s to %s", enc1, enc2)
			}
		}
		// The answers to what was broken are well-framed parse errors.
		r := bufio.NewReader(&conn.out)
		for {
			line, err := r.ReadString('\n')
			if errors.Is(err, io.EOF) && line == "" {
				return
			}
			v, ok := strings.CutPrefix(line, "Content-Length: ")
			if !ok {
				t.Fatalf("answer header %q", line)
			}
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if blank, _ := r.ReadString('\n'); err != nil || blank != "\r\n" {
				t.Fatalf("answer header %q", line)
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(r, body); err != nil {
				t.Fatalf("answer shorter than its Content-Length %d", n)
			}
			msg, err := jsonrpc2.DecodeMessage(body)
			if err != nil {
				t.Fatalf("answer %q: %v", body, err)
			}
			if resp, ok := msg.(*jsonrpc2.Response); !ok || resp.Err() == nil {
				t.Fatalf("answer %s is not an error response", body)
			}
		}
	})
}
