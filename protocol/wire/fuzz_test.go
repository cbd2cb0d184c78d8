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

// FuzzDirEntries decodes a listing as the client does (a frame from the
// agent, decoded as a readdir result) and checks what the client relies on:
// a name CheckDirEntryName accepts, joined to a directory, names exactly one
// entry of that directory, whatever the agent sent.
func FuzzDirEntries(f *testing.F) {
	data, err := os.ReadFile(filepath.Join(vectorDir, "file.readdir.result.json"))
	if err != nil {
		f.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		f.Fatal(err)
	}
	f.Add(rawFrame(compact.String()))
	for _, name := range []string{"..", ".", "", "a/b", "../../home/u/.ssh/authorized_keys", "..data", "x\x00y", "/etc"} {
		body, _ := json.Marshal(FileReaddirResult{Entries: []DirEntry{{Name: name, Type: 8}}})
		f.Add(rawFrame(`{"id":1,"type":"file.readdir.result","body":` + string(body) + `}`))
	}
	const dir = "/tmp/remocal-dirs-1/7"
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ReadEnvelope(bytes.NewReader(data), 1<<16)
		if err != nil {
			return
		}
		res, err := DecodeAs[*FileReaddirResult](env)
		if err != nil {
			return
		}
		for _, e := range res.Entries {
			if CheckDirEntryName(e.Name) != nil {
				continue
			}
			p := filepath.Join(dir, e.Name)
			if filepath.Dir(p) != dir || filepath.Base(p) != e.Name || e.Name == ".." {
				t.Fatalf("accepted entry name %q leads to %q, not an entry of %s", e.Name, p, dir)
			}
		}
	})
}
