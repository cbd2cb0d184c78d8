package incoming

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// The HEADERS frame made for an h2c upgrade decodes, with a real HPACK
// decoder, to the request without its connection-specific headers, and
// leaves the decoder's dynamic table empty (the client's encoder assumes
// it untouched).
func TestStream1HeadersDecode(t *testing.T) {
	raw := "GET /a?b=c HTTP/1.1\r\nHost: app:9092\r\nConnection: Upgrade, HTTP2-Settings, X-Hop\r\nUpgrade: h2c\r\n" +
		"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nX-Hop: 1\r\nTE: gzip\r\nX-User: alice\r\nX-Long: " + strings.Repeat("v", 300) + "\r\n\r\n"
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if !isH2CUpgrade(req) {
		t.Fatal("not recognised as an h2c upgrade")
	}
	frame, ok := stream1Headers(req)
	if !ok {
		t.Fatal("no frame")
	}
	if frame[3] != h2FrameHeaders || frame[4] != h2FlagEndStream|h2FlagEndHeaders || frame[8] != 1 {
		t.Fatalf("frame header % x", frame[:9])
	}
	got := map[string]string{}
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) { got[f.Name] = f.Value })
	if _, err := dec.Write(frame[9:]); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{":method": "GET", ":scheme": "http", ":authority": "app:9092", ":path": "/a?b=c", "x-user": "alice", "x-long": strings.Repeat("v", 300)}
	if len(got) != len(want) {
		t.Errorf("decoded %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// Index 62 is the first dynamic entry: there must be none.
	if _, err := dec.Write([]byte{0x80 | 62}); err == nil {
		t.Error("the block added to the decoder's dynamic table")
	}
}

func TestStream1HeadersRefusesOversizedHeaders(t *testing.T) {
	req := mustRequest(t, "/", strings.Repeat("u", h2DefaultMaxFrame))
	if _, ok := stream1Headers(req); ok {
		t.Error("headers larger than a frame were accepted")
	}
}

func TestDropUpgradeKeepsClose(t *testing.T) {
	req := mustRequest(t, "/", "alice")
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings, close")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "")
	dropUpgrade(req)
	if req.Header.Get("Upgrade") != "" || req.Header.Get("Http2-Settings") != "" || req.Header.Get("Connection") != "close" {
		t.Errorf("headers after dropUpgrade: %v", req.Header)
	}
}

func TestHpackIntMultiByte(t *testing.T) {
	// RFC 7541 C.1.2: 1337 with a 5-bit prefix.
	if got := hpackInt(nil, 5, 1337); string(got) != "\x1f\x9a\x0a" {
		t.Errorf("hpackInt(5, 1337) = % x", got)
	}
}

// A mirror's pipe never blocks the writer: what its reader does not take
// up to mirrorBodyLimit is kept, beyond that the copy ends with an error.
func TestBodyPipeBounded(t *testing.T) {
	p := newBodyPipe()
	p.write([]byte("abc"))
	p.finish(nil)
	if b, err := io.ReadAll(p); string(b) != "abc" || err != nil {
		t.Errorf("read %q, %v", b, err)
	}

	p = newBodyPipe()
	chunk := make([]byte, 64<<10)
	for range mirrorBodyLimit/len(chunk) + 1 {
		p.write(chunk)
	}
	if _, err := io.ReadAll(p); !errors.Is(err, errMirrorBehind) {
		t.Errorf("a pipe past its limit read %v, want errMirrorBehind", err)
	}

	p = newBodyPipe()
	tee := &teeBody{ReadCloser: io.NopCloser(strings.NewReader("abcdef")), pipes: []*bodyPipe{p}}
	tee.Read(make([]byte, 3))
	tee.Close() // the stream ended before its body
	if b, err := io.ReadAll(p); string(b) != "abc" || !errors.Is(err, errMirrorCut) {
		t.Errorf("cut body read %q, %v; want abc and errMirrorCut", b, err)
	}
}

func TestGRPCMessageEncoding(t *testing.T) {
	if got := grpcPercentEncode("50% of\tü"); got != "50%25 of%09%C3%BC" {
		t.Errorf("got %q", got)
	}
}

// Every literal the upgrade writes decodes to itself with a real HPACK
// decoder, whatever its length (multi-byte length prefixes included).
func FuzzHpackLiteral(f *testing.F) {
	f.Add("x-user", "alice")
	f.Add(":path", strings.Repeat("/a", 200))
	f.Add("", "")
	f.Fuzz(func(t *testing.T, name, value string) {
		var got []hpack.HeaderField
		dec := hpack.NewDecoder(4096, func(hf hpack.HeaderField) { got = append(got, hf) })
		dec.SetMaxStringLength(1 << 20)
		if _, err := dec.Write(hpackLiteral(nil, name, value)); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if len(got) != 1 || got[0].Name != name || got[0].Value != value {
			t.Fatalf("decoded %+v, want %q: %q", got, name, value)
		}
	})
}
