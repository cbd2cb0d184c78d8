package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in protocol/testdata/wire")

// vectorDir is shared with the TypeScript and Java implementations, which
// decode and re-encode the same files.
const vectorDir = "../testdata/wire"

// samples holds one representative envelope per message type. Every
// registered type must have one, so a new message cannot ship without a
// vector for the other languages.
var samples = map[string]struct {
	id  uint64
	msg Message
}{
	TypeHello:      {0, sampleHello},
	TypeWelcome:    {0, sampleWelcome},
	TypeAuth:       {0, &Auth{Proof: ClientProof(sampleKey, sampleHello, sampleWelcome)}},
	TypeAuthResult: {0, &AuthResult{}},
	TypeError: {7, &Error{
		Code:    CodeConflict,
		Message: `port 8080 is already stolen without a filter by "bob@desk" (subscription s3)`,
		Holder:  &Holder{Client: "bob@desk", Subscription: "s3", Port: 8080, Mode: ModeSteal},
	}},
	TypePing:       {1, &Ping{Payload: "hi"}},
	TypePingResult: {1, &PingResult{Payload: "hi"}},
	TypeEnvGet:     {2, &EnvGet{Include: []string{"DB_*", "API_*"}, Exclude: []string{"*_SECRET"}}},
	TypeEnvGetResult: {2, &EnvGetResult{Vars: map[string]string{
		"API_TOKEN": "remote-secret-token", "DB_HOST": "postgres.default.svc.cluster.local",
	}}},
	TypeFileRead:       {3, &FileRead{Path: "/etc/inventory/config.json", Offset: 0, Length: 4096}},
	TypeFileReadResult: {3, &FileReadResult{Data: []byte("{\"mode\":\"remote\"}\n"), Size: 18, EOF: true}},
	TypeFileStat:       {4, &FileStat{Path: "/etc/resolv.conf", NoFollow: true}},
	TypeFileStatResult: {4, &FileInfo{
		Mode: 0o100644, Size: 18, Ino: 131, Dev: 64768, Nlink: 1, UID: 0, GID: 0,
		Blksize: 4096, Blocks: 8, Atime: 1764097200000000000, Mtime: 1764097200000000000, Ctime: 1764097200000000000,
	}},
	TypeFileReadlink:       {5, &FileReadlink{Path: "/etc/localtime"}},
	TypeFileReadlinkResult: {5, &FileReadlinkResult{Target: "/usr/share/zoneinfo/Etc/UTC"}},
	TypeFileReaddir:        {6, &FileReaddir{Path: "/etc/inventory"}},
	TypeFileReaddirResult: {6, &FileReaddirResult{Entries: []DirEntry{
		{Name: "config.json", Type: 8, Ino: 131}, {Name: "tls", Type: 4, Ino: 140},
	}}},
	TypeFileAccess:       {8, &FileAccess{Path: "/etc/inventory/config.json", Mode: 4}},
	TypeFileAccessResult: {8, &FileAccessResult{}},
	TypeSubscribe: {9, &Subscribe{Port: 8080, Mode: ModeSteal, Filter: &HTTPFilter{
		Headers: map[string]string{"X-Remocal-User": "alice"}, Path: "/api/.*", Methods: []string{"GET", "POST"},
	}}},
	TypeSubscribeResult:   {9, &SubscribeResult{ID: "s1"}},
	TypeUnsubscribe:       {10, &Unsubscribe{ID: "s1"}},
	TypeUnsubscribeResult: {10, &UnsubscribeResult{}},
	TypeDial:              {0, &Dial{Network: "tcp", Address: "10.77.0.20:6379"}},
	TypeDialResult:        {0, &DialResult{Local: "10.77.0.10:40312", Remote: "10.77.0.20:6379"}},
	TypeIncomingConnection: {0, &IncomingConnection{
		Subscription: "s1", Connection: 17, Mode: ModeMirror, Port: 8080,
		Source: "10.77.0.100:51234", Destination: "10.77.0.10:8080",
	}},
	TypeIncomingRequest: {0, &IncomingRequest{
		Subscription: "s2", Connection: 18, Request: 3, Mode: ModeSteal, Port: 8080,
		Source: "10.77.0.100:51236", Destination: "10.77.0.10:8080",
	}},
	TypeQueueSplit: {14, &QueueSplit{Consumer: "orders-worker", Queue: "orders", Mode: "steal",
		Filter: &QueueFilter{Headers: map[string]string{"tenant": "a"}, Body: map[string]string{"$.region": "eu-.*"}}}},
	TypeQueueSplitResult: {14, &QueueSplitResult{ID: "orders-worker/orders", Queue: "orders", Env: map[string]string{
		"ORDERS_STREAM": "{orders}.remocal.session-s-a1ice00001", "ORDERS_GROUP": "workers",
	}}},
	TypeEvent: {0, &Event{
		Kind: EventSubscriptionLost, Subscription: "s1", Port: 8080,
		By:      &Holder{Client: "carol@desk", Subscription: "s7", Port: 8080, Mode: ModeSteal, User: "carol", Session: "s-c4r0l00001", Since: &sampleSince},
		Message: "port 8080 was taken by carol (carol@desk) with an override; its traffic no longer reaches this session",
	}},
}

// variants are further vectors of messages whose first sample does not
// show every field: what an operator (protocol 1.2) sends. The vectors of
// the 1.1 messages stay as they were, so older peers' vectors still hold.
var variants = map[string]struct {
	typ string
	id  uint64
	msg Message
}{
	"welcome.operator": {TypeWelcome, 0, &Welcome{
		Protocol:     Version{1, 2},
		Agent:        AgentInfo{Version: "0.2.0", PID: 1},
		Capabilities: []Capability{CapEnv, CapFiles, CapDialTCP, CapDialUDP, CapMirror, CapSteal, CapHTTP1Filter, CapTargetUTSInfo, CapOperator},
		Target:       TargetInfo{Name: "deployment/api", PID: 7, Hostname: "api-7d9f6-x2x4q"},
		ClientID:     "s-a1ice00001",
		Operator: &OperatorInfo{
			Session: "s-a1ice00001", Pods: []string{"api-7d9f6-x2x4q", "api-7d9f6-zq8rt"},
			Primary: "api-7d9f6-x2x4q", PrimaryReason: "oldest ready pod",
		},
	}},
	"hello.operator": {TypeHello, 0, &Hello{
		Protocol:     Version{1, 2},
		Client:       ClientInfo{Name: "alice@laptop", Version: "0.2.0", Session: "s-a1ice00001", Host: "laptop", Tool: "remocal exec"},
		Capabilities: []Capability{CapEnv, CapFiles, CapDialTCP},
		Nonce:        sequence(0x40),
	}},
	"incoming.subscribe.override": {TypeSubscribe, 11, &Subscribe{Port: 8080, Mode: ModeSteal, Override: true}},
	"incoming.connection.h2c": {TypeIncomingConnection, 0, &IncomingConnection{
		Subscription: "s4", Connection: 19, Mode: ModeMirror, Port: 9090,
		Source: "10.77.0.100:51240", Destination: "10.77.0.10:9090", Protocol: ProtocolH2C,
	}},
	"incoming.connection.http1-conn": {TypeIncomingConnection, 0, &IncomingConnection{
		Subscription: "s5", Connection: 20, Mode: ModeSteal, Port: 8080,
		Source: "10.77.0.100:51242", Destination: "10.77.0.10:8080", Protocol: ProtocolHTTP1,
	}},
	"error.conflict.operator": {TypeError, 12, &Error{
		Code:    CodeConflict,
		Message: `port 8080 of deployment/api is stolen with filter header X-User="alice" by alice (alice@laptop, session s-a1ice00001) since 2026-12-07T10:02:00Z; use a filter with a different header value, mirror mode, or onConflict: override if you may`,
		Holder: &Holder{
			Client: "alice@laptop", Subscription: "o3", Port: 8080, Mode: ModeSteal,
			Filter: &HTTPFilter{Headers: map[string]string{"X-User": "alice"}},
			User:   "alice", Session: "s-a1ice00001", Since: &sampleSince,
		},
	}},
	"error.policy": {TypeError, 13, &Error{
		Code:    CodePermissionDenied,
		Message: `RemocalPolicy shop/no-steal denies it (rule incoming.blockSteal): stealing port 8080 of deployment/api is not allowed; mirror it instead (network.incoming.mode: mirror)`,
		Policy:  &PolicyViolation{Kind: "RemocalPolicy", Namespace: "shop", Name: "no-steal", Rule: "incoming.blockSteal"},
	}},
}

var sampleSince = time.Date(2026, 12, 7, 10, 2, 0, 0, time.UTC)

// The handshake samples are one authenticated handshake with sampleKey, so
// other implementations can check their proofs against the vectors.
var (
	sampleKey   = []byte("example-agent-key-0123456789abcdef")
	sampleHello = &Hello{
		Protocol:     Version{1, 1},
		Client:       ClientInfo{Name: "alice@laptop", Version: "0.1.0", Session: "s-42"},
		Capabilities: []Capability{CapEnv, CapFiles, CapDialTCP},
		Nonce:        sequence(0x00),
	}
	sampleWelcome = func() *Welcome {
		w := &Welcome{
			Protocol:     Version{1, 1},
			Agent:        AgentInfo{Version: "0.1.0", PID: 4242},
			Capabilities: []Capability{CapEnv, CapFiles, CapDialTCP, CapDialUDP, CapMirror, CapSteal, CapHTTP1Filter, CapAuth},
			Target:       TargetInfo{Name: "pid/1234", PID: 1234, Hostname: "inventory-7f9c"},
			ClientID:     "c1",
			Nonce:        sequence(0x20),
		}
		w.Proof = AgentProof(sampleKey, sampleHello, w)
		return w
	}()
)

// sequence returns NonceSize bytes counting up from first.
func sequence(first byte) []byte {
	b := make([]byte, NonceSize)
	for i := range b {
		b[i] = first + byte(i)
	}
	return b
}

func vectorPath(name string) string { return filepath.Join(vectorDir, name) }

// TestGoldenEnvelopes checks both directions for every message: Go encodes
// exactly the stored bytes, and the stored bytes decode to the same value.
func TestGoldenEnvelopes(t *testing.T) {
	types := MessageTypes()
	sort.Strings(types)
	for _, typ := range types {
		t.Run(typ, func(t *testing.T) {
			s, ok := samples[typ]
			if !ok {
				t.Fatalf("no golden sample for message type %q; add one to samples", typ)
			}
			checkGolden(t, typ, typ, s.id, s.msg)
		})
	}
	for name, v := range variants {
		t.Run(name, func(t *testing.T) { checkGolden(t, name, v.typ, v.id, v.msg) })
	}
}

// checkGolden compares msg's encoding with the vector name.json and
// decodes the vector back to msg.
func checkGolden(t *testing.T, name, typ string, id uint64, msg Message) {
	t.Helper()
	env, err := NewEnvelope(id, msg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := vectorPath(name + ".json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read vector (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("encoding differs from %s (-stored +encoded):\n%s", path, diff)
	}
	decodedEnv, err := DecodeEnvelope(want)
	if err != nil {
		t.Fatal(err)
	}
	if decodedEnv.ID != id || decodedEnv.Type != typ {
		t.Errorf("decoded id/type = %d/%s, want %d/%s", decodedEnv.ID, decodedEnv.Type, id, typ)
	}
	decoded, err := decodedEnv.Decode()
	if typ == TypeError {
		decoded = err.(*Error)
	} else if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(msg, decoded); diff != "" {
		t.Errorf("decoded value differs (-want +got):\n%s", diff)
	}
}

// binaryVectors covers the byte-level encodings: frame, chunk, datagram.
func binaryVectors(t *testing.T) map[string][]byte {
	t.Helper()
	frame, err := AppendFrame([]byte(Preamble), &Envelope{ID: 1, Type: TypePing, Body: json.RawMessage(`{"payload":"hi"}`)})
	if err != nil {
		t.Fatal(err)
	}
	chunk := AppendChunk(nil, Chunk{Dir: FromTarget, Data: []byte("HTTP/1.1 200 OK\r\n")})
	dgram, err := AppendDatagram(nil, []byte{0xde, 0xad, 0xbe, 0xef})
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{"preamble-and-ping-frame.hex": frame, "chunk.hex": chunk, "datagram.hex": dgram}
}

func TestGoldenBinary(t *testing.T) {
	for name, got := range binaryVectors(t) {
		path := vectorPath(name)
		encoded := []byte(hex.EncodeToString(got) + "\n")
		if *update {
			if err := os.WriteFile(path, encoded, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read vector (run go test -update to create it): %v", err)
		}
		if !bytes.Equal(want, encoded) {
			t.Errorf("%s: stored %s, encoded %s", name, want, encoded)
		}
	}
}

// TestGoldenProofs pins the proof computation: auth-proofs.json holds the
// key (hex) and both proofs (hex) of the hello and welcome vectors.
func TestGoldenProofs(t *testing.T) {
	type vector struct {
		Key         string `json:"key"`
		AgentProof  string `json:"agentProof"`
		ClientProof string `json:"clientProof"`
	}
	got := vector{
		Key:         hex.EncodeToString(sampleKey),
		AgentProof:  hex.EncodeToString(AgentProof(sampleKey, sampleHello, sampleWelcome)),
		ClientProof: hex.EncodeToString(ClientProof(sampleKey, sampleHello, sampleWelcome)),
	}
	enc, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	enc = append(enc, '\n')
	path := vectorPath("auth-proofs.json")
	if *update {
		if err := os.WriteFile(path, enc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read vector (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(enc)); diff != "" {
		t.Errorf("proofs differ from %s (-stored +computed):\n%s", path, diff)
	}
	if got.AgentProof == got.ClientProof {
		t.Error("agent and client proofs are equal: a proof could be reflected")
	}
}

func TestProofsBindTheTranscript(t *testing.T) {
	base := AgentProof(sampleKey, sampleHello, sampleWelcome)
	if !CheckProof(base, sampleWelcome.Proof) {
		t.Fatal("the welcome's own proof does not check")
	}
	mutations := map[string]func(h *Hello, w *Welcome){
		"hello nonce":   func(h *Hello, w *Welcome) { h.Nonce = sequence(0x01) },
		"welcome nonce": func(h *Hello, w *Welcome) { w.Nonce = sequence(0x21) },
		"client name":   func(h *Hello, w *Welcome) { h.Client.Name = "mallory@laptop" },
		"session":       func(h *Hello, w *Welcome) { h.Client.Session = "s-43" },
		"client id":     func(h *Hello, w *Welcome) { w.ClientID = "c2" },
		"target":        func(h *Hello, w *Welcome) { w.Target.Name = "pid/1" },
		// Length prefixes: moving a byte between fields changes the proof.
		"field boundary": func(h *Hello, w *Welcome) { h.Client.Name, h.Client.Session = "alice@laptops", "-42" },
	}
	for name, mutate := range mutations {
		h, w := *sampleHello, *sampleWelcome
		mutate(&h, &w)
		if CheckProof(base, AgentProof(sampleKey, &h, &w)) {
			t.Errorf("changing the %s keeps the proof", name)
		}
	}
	if CheckProof(base, AgentProof([]byte("another key of enough length!!"), sampleHello, sampleWelcome)) {
		t.Error("another key gives the same proof")
	}
	if CheckProof(base, nil) || CheckProof(base, base[:16]) {
		t.Error("a short proof checks")
	}
}
