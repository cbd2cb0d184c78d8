package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMessage(&buf, 5, &FileRead{Path: "/etc/hosts"}); err != nil {
		t.Fatal(err)
	}
	if err := WriteEnvelope(&buf, ErrorEnvelope(6, Errorf(CodeNotFound, "no such file"))); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMessage[*FileRead](&buf, MaxFrameSize)
	if err != nil || got.Path != "/etc/hosts" {
		t.Fatalf("first frame = %+v, %v", got, err)
	}
	_, err = ReadMessage[*FileRead](&buf, MaxFrameSize)
	if CodeOf(err) != CodeNotFound {
		t.Fatalf("second frame: want not_found error, got %v", err)
	}
	if _, err := ReadEnvelope(&buf, MaxFrameSize); err != io.EOF {
		t.Fatalf("after last frame: want io.EOF, got %v", err)
	}
}

func rawFrame(payload string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

func TestReadEnvelopeRejectsBadInput(t *testing.T) {
	cases := []struct {
		name  string
		input []byte
		code  Code
		text  string
	}{
		{"truncated header", []byte{0, 0}, CodeInvalid, "truncated frame header"},
		{"truncated body", rawFrame(`{"type":"ping"}`)[:10], CodeInvalid, "truncated frame"},
		{"oversized", binary.BigEndian.AppendUint32(nil, MaxFrameSize+1), CodeTooLarge, "exceeds"},
		{"not json", rawFrame(`hello`), CodeInvalid, "malformed frame"},
		{"no type", rawFrame(`{"id":1}`), CodeInvalid, "no type"},
		{"error without error", rawFrame(`{"type":"error"}`), CodeInvalid, "without an error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadEnvelope(bytes.NewReader(c.input), MaxFrameSize)
			if CodeOf(err) != c.code || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("got %v, want code %s containing %q", err, c.code, c.text)
			}
		})
	}
}

func TestDecodeValidates(t *testing.T) {
	cases := []struct {
		frame string
		text  string
	}{
		{`{"type":"file.read","body":{"path":"etc/passwd"}}`, "not absolute"},
		{`{"type":"file.read","body":{"path":"/a","length":-1}}`, "negative"},
		{`{"type":"file.read","body":{"path":"/a","length":99999999}}`, "exceeds"},
		{`{"type":"file.access","body":{"path":"/a","mode":8}}`, "bits other than"},
		{`{"type":"incoming.subscribe","body":{"port":0,"mode":"steal"}}`, "port must be"},
		{`{"type":"incoming.subscribe","body":{"port":80,"mode":"copy"}}`, `mode "copy"`},
		{`{"type":"incoming.subscribe","body":{"port":80,"mode":"steal","filter":{}}}`, "at least one of"},
		{`{"type":"incoming.subscribe","body":{"port":80,"mode":"steal","filter":{"path":"("}}}`, "path pattern"},
		{`{"type":"incoming.subscribe","body":{"port":80,"mode":"steal","filter":{"methods":["get"]}}}`, "upper-case"},
		{`{"type":"dial","body":{"network":"tcp","address":"redis:6379"}}`, "numeric ip:port"},
		{`{"type":"dial","body":{"network":"sctp","address":"10.0.0.1:1"}}`, `network "sctp"`},
		{`{"type":"hello","body":{"protocol":{"major":1},"client":{"name":" "}}}`, "client.name is empty"},
		{`{"type":"file.stat","body":{"path":7}}`, "malformed file.stat body"},
		{`{"type":"launch.missiles"}`, "unknown message type"},
	}
	for _, c := range cases {
		env, err := DecodeEnvelope([]byte(c.frame))
		if err != nil {
			t.Fatalf("%s: %v", c.frame, err)
		}
		_, err = env.Decode()
		if err == nil || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: got %v, want error containing %q", c.frame, err, c.text)
		}
	}
}

func TestDecodeIgnoresUnknownFields(t *testing.T) {
	env, err := DecodeEnvelope([]byte(`{"type":"ping","body":{"payload":"x","addedInV1_7":true},"future":1}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := DecodeAs[*Ping](env)
	if err != nil || p.Payload != "x" {
		t.Fatalf("got %+v, %v", p, err)
	}
}

func TestDecodeAsWrongType(t *testing.T) {
	env, _ := NewEnvelope(1, &Ping{})
	if _, err := DecodeAs[*Welcome](env); CodeOf(err) != CodeInvalid {
		t.Fatalf("want invalid_request for a mismatched reply, got %v", err)
	}
}

func TestPreamble(t *testing.T) {
	var buf bytes.Buffer
	WritePreamble(&buf)
	if err := ReadPreamble(&buf); err != nil {
		t.Fatal(err)
	}
	err := ReadPreamble(strings.NewReader("HTTP/1.1 400 Bad Request\r\n"))
	if !errors.Is(err, ErrNotRemocal) {
		t.Fatalf("want ErrNotRemocal, got %v", err)
	}
}

func TestErrorMatching(t *testing.T) {
	err := FromErrno(CodeIO, syscall.ENOENT, "open /x")
	if err.Code != CodeNotFound || err.Errno != int(syscall.ENOENT) {
		t.Fatalf("FromErrno(ENOENT) = %+v", err)
	}
	if !errors.Is(err, syscall.ENOENT) || !errors.Is(err, &Error{Code: CodeNotFound}) {
		t.Fatalf("errors.Is must match errno and code: %v", err)
	}
	if errors.Is(err, syscall.EACCES) {
		t.Fatalf("errors.Is matched the wrong errno")
	}
}

func TestChunkAndDatagram(t *testing.T) {
	var buf bytes.Buffer
	buf.Write(AppendChunk(nil, Chunk{Dir: FromPeer, Data: []byte("GET / HTTP/1.1\r\n")}))
	buf.Write(AppendChunk(nil, Chunk{Dir: FromTarget, Data: nil}))
	c1, err := ReadChunk(&buf)
	if err != nil || c1.Dir != FromPeer || string(c1.Data) != "GET / HTTP/1.1\r\n" {
		t.Fatalf("chunk 1 = %+v, %v", c1, err)
	}
	c2, err := ReadChunk(&buf)
	if err != nil || c2.Dir != FromTarget || len(c2.Data) != 0 {
		t.Fatalf("chunk 2 = %+v, %v", c2, err)
	}
	if _, err := ReadChunk(&buf); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
	if _, err := ReadChunk(bytes.NewReader([]byte{9, 0, 0, 0, 0})); CodeOf(err) != CodeInvalid {
		t.Fatalf("bad direction: %v", err)
	}
	if _, err := ReadChunk(bytes.NewReader([]byte{0, 0xff, 0, 0, 0})); CodeOf(err) != CodeTooLarge {
		t.Fatalf("oversized chunk: %v", err)
	}

	d, err := AppendDatagram(nil, []byte("query"))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, MaxDatagramSize)
	n, err := ReadDatagram(bytes.NewReader(d), out)
	if err != nil || string(out[:n]) != "query" {
		t.Fatalf("datagram = %q, %v", out[:n], err)
	}
	if _, err := AppendDatagram(nil, make([]byte, MaxDatagramSize+1)); CodeOf(err) != CodeTooLarge {
		t.Fatalf("oversized datagram: %v", err)
	}
}

func TestHTTPFilterMatch(t *testing.T) {
	f := &HTTPFilter{Headers: map[string]string{"x-remocal-user": "alice"}, Path: "/api/.*", Methods: []string{"GET"}}
	c, err := f.Compile()
	if err != nil {
		t.Fatal(err)
	}
	h := func(kv ...string) map[string][]string {
		m := map[string][]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = append(m[kv[i]], kv[i+1])
		}
		return m
	}
	cases := []struct {
		method, path string
		header       map[string][]string
		want         bool
	}{
		{"GET", "/api/items", h("X-Remocal-User", "alice"), true},
		{"GET", "/api/items", h("X-Remocal-User", "malice"), false}, // anchored
		{"GET", "/api/items", h("X-Remocal-User", "bob", "X-Remocal-User", "alice"), true},
		{"POST", "/api/items", h("X-Remocal-User", "alice"), false},
		{"GET", "/health", h("X-Remocal-User", "alice"), false},
		{"GET", "/api/items", h(), false},
	}
	for _, tc := range cases {
		if got := c.Match(tc.method, tc.path, tc.header); got != tc.want {
			t.Errorf("Match(%s %s %v) = %v, want %v", tc.method, tc.path, tc.header, got, tc.want)
		}
	}
	if s := f.String(); s != `header X-Remocal-User="alice" path="/api/.*" methods=GET` {
		t.Errorf("String() = %s", s)
	}
}
