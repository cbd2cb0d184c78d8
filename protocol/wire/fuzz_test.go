package wire

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The agent decodes frames from any client that can reach it, so no input may
// panic it or make it allocate beyond the frame limit.

func FuzzReadEnvelope(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(vectorDir, "*.json"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			f.Fatal(err)
		}
		f.Add(rawFrame(compact.String()))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			env, err := ReadEnvelope(r, 1<<16)
			if err != nil {
				return
			}
			msg, err := env.Decode()
			if err == nil && msg == nil {
				t.Fatalf("Decode returned neither message nor error for %q", data)
			}
			if err == nil {
				// A valid message must survive re-encoding.
				if _, err := NewEnvelope(env.ID, msg); err != nil {
					t.Fatalf("re-encode %s: %v", env.Type, err)
				}
			}
		}
	})
}

func FuzzReadChunk(f *testing.F) {
	f.Add(AppendChunk(nil, Chunk{Dir: FromPeer, Data: []byte("abc")}))
	f.Add([]byte{1, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			c, err := ReadChunk(r)
			if err != nil {
				return
			}
			if len(c.Data) > MaxChunkSize {
				t.Fatalf("chunk of %d bytes passed the limit", len(c.Data))
			}
		}
	})
}

func FuzzReadDatagram(f *testing.F) {
	d, _ := AppendDatagram(nil, []byte("abc"))
	f.Add(d)
	f.Fuzz(func(t *testing.T, data []byte) {
		buf := make([]byte, MaxDatagramSize)
		r := bytes.NewReader(data)
		for {
			if _, err := ReadDatagram(r, buf); err != nil {
				if err != io.EOF && CodeOf(err) == "" {
					t.Fatalf("uncategorised error %v", err)
				}
				return
			}
		}
	})
}

func FuzzHTTPFilter(f *testing.F) {
	f.Add("x-user", "alice", "/api/.*", "GET", "/api/x", "alice")
	f.Fuzz(func(t *testing.T, name, value, path, method, reqPath, reqValue string) {
		filter := &HTTPFilter{Headers: map[string]string{name: value}, Path: path, Methods: []string{method}}
		c, err := filter.Compile()
		if err != nil {
			return
		}
		c.Match(method, reqPath, map[string][]string{name: {reqValue}})
	})
}
