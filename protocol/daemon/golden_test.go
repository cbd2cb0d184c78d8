package daemon

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.lsp.dev/jsonrpc2"

	"github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/protocol/wire"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in protocol/testdata/daemon")

// vectorDir is shared with the TypeScript and Java clients, which decode
// and re-encode the same files.
const vectorDir = "../testdata/daemon"

var started = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)

var session = Session{ID: "s1", Target: "pid/4242", WorkspaceFolder: "/home/alice/inventory", Owner: "alice@laptop via Visual Studio Code 1.139.1",
	State: StateActive, StartedAt: started, Incoming: "mirror"}

var kubeSession = Session{ID: "s2", Target: "deployment/inventory", Namespace: "shop", WorkspaceFolder: "/home/alice/inventory", Owner: "alice@laptop via Visual Studio Code 1.139.1",
	Label: "debug: Launch inventory", State: StateActive, StartedAt: started, Incoming: "steal", Resolved: "deployment/inventory (pod shop/inventory-7c9f8d5b6-2xk4q, container inventory)",
	Note: "deployment/inventory has 2 running pods; this session uses inventory-7c9f8d5b6-2xk4q (the oldest), so only its traffic is mirrored or stolen; the other pods serve as before"}

var later = started.Add(32 * time.Minute)

var remoteBob = RemoteSession{Name: "s-0bq3n8c2zd", Namespace: "shop", User: "bob", Client: "bob@desk", Tool: "vscode", Target: "deployment/inventory",
	Phase: RemoteActive, Since: started, Ports: []RemotePort{
		{Port: 8080, Mode: wire.ModeSteal, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "bob"}}, Lock: true, Since: &started},
		{Port: 9090, Mode: wire.ModeMirror}}}

// Queue splits (1.4, docs/queues.md): alice's session takes tenant a's
// orders and a copy of EU invoices; bob's, seen from the operator, counts
// what it was delivered.
var (
	aliceSplits = []QueueSplit{
		{Consumer: "orders-worker", Queue: "orders", Mode: queuesplit.ModeSteal, Filter: &queuesplit.Filter{Headers: map[string]string{"tenant": "a"}},
			Env: map[string]string{"ORDERS_GROUP": "workers", "ORDERS_STREAM": "{orders}.remocal.session-s-4l1c3xq7de"}},
		{Consumer: "orders-worker", Queue: "invoices", Mode: queuesplit.ModeMirror,
			Filter: &queuesplit.Filter{Headers: map[string]string{"region": "eu-.*"}, Body: map[string]string{"$.amount": "4[2-9]|[5-9][0-9]"}},
			Env:    map[string]string{"INVOICES_STREAM": "{invoices}.remocal.session-s-4l1c3xq7de"}},
	}
	queueSession = Session{ID: "s3", Target: "deployment/orders-worker", Namespace: "shop", WorkspaceFolder: "/home/alice/orders", Owner: "alice@laptop via Visual Studio Code 1.139.1",
		Label: "debug: Launch orders", State: StateActive, StartedAt: started, Incoming: "mirror",
		Resolved: "deployment/orders-worker (pod shop/orders-worker-5f6d7c8b9-k2m4p, container worker)", QueueSplits: aliceSplits}
	remoteBobQueues = RemoteSession{Name: "s-b0bq0e0e01", Namespace: "shop", User: "bob", Client: "bob@desk", Tool: "remocal exec", Target: "deployment/orders-worker",
		Phase: RemoteActive, Since: started, Ports: []RemotePort{}, QueueSplits: []RemoteQueueSplit{
			{Consumer: "orders-worker", Queue: "orders", Mode: queuesplit.ModeSteal, Filter: &queuesplit.Filter{Headers: map[string]string{"tenant": "b"}}, Since: started, Delivered: 412},
			{Consumer: "orders-worker", Queue: "invoices", Mode: queuesplit.ModeMirror, Since: later, Delivered: 0}}}
)

// vectors holds one example of every payload, named by method and role.
// Every method and notification constant must appear.
var vectors = map[string]any{
	"initialize.result": initializeResult{Capabilities: initializeCapabilities{Experimental: InitializeExperimental{Remocal: ExperimentalRemocal{ProtocolVersion: ProtocolVersion}}},
		ServerInfo: initializeServerInfo{Name: ServerName, Version: "0.3.0"}},
	MethodSessionKill + ".params":    RemoteSessionParams{Namespace: "shop", Name: "s-0bq3n8c2zd"},
	"error.policy.params":            ErrorData{Reason: "policy", Policy: &wire.PolicyViolation{Kind: "RemocalPolicy", Namespace: "shop", Name: "no-steal", Rule: "incoming.blockSteal"}},
	MethodDaemonInfo + ".result":     DaemonInfo{Version: "0.3.0", ProtocolVersion: ProtocolVersion, PID: 7311, Socket: "/run/user/1000/remocal/daemon.sock", Sessions: 1, Clients: 2, StartedAt: started},
	MethodDaemonShutdown + ".params": DaemonShutdownParams{Force: true},
	MethodNamespaces + ".result":     NamespacesResult{Namespaces: []Namespace{{Name: "local", Provider: "local"}, {Name: "default", Provider: "kubernetes"}}},
	MethodTargets + ".params":        TargetsParams{Kinds: []string{"pid"}, Namespace: "local"},
	MethodTargets + ".result": TargetsResult{Targets: []Target{
		{Ref: "pid/4242", Kind: "pid", Name: "inventory", Namespace: "local", Provider: "local", Ready: true, Description: "/srv/inventory --listen :8080"},
		{Ref: "deployment/inventory", Kind: "deployment", Name: "inventory", Namespace: "shop", Provider: "kubernetes", Ready: true, Status: "2/3 ready",
			Containers: []string{"inventory", "migrate"}, Description: "remocal.local/examples/inventory:dev, istio/proxyv2:1.24"},
	}},
	MethodConfigResolve + ".params": ConfigParams{WorkspaceFolder: "/home/alice/inventory"},
	MethodConfigResolve + ".result": ConfigResult{File: "/home/alice/inventory/.remocal/config.json", Valid: true, Problems: []Problem{}, Config: map[string]any{"target": "pid/4242", "fs": map[string]any{"mode": "read"}}},
	MethodConfigVerify + ".params":  ConfigParams{File: "/home/alice/inventory/.remocal/config.json"},
	MethodConfigVerify + ".result":  ConfigResult{File: "/home/alice/inventory/.remocal/config.json", Valid: false, Problems: []Problem{{Path: "$.network.incoming.mode", Line: 3, Column: 34, Message: `got "copy", expected one of "mirror", "steal", "off"`}}},
	MethodSessionStart + ".params": SessionStartParams{Target: "deployment/inventory", Namespace: "shop", WorkspaceFolder: "/home/alice/inventory", Incoming: "steal", Program: &Program{Path: "/home/alice/inventory/bin/inventory", Args: []string{"--debug"}, Launch: LaunchAuto},
		Label: "debug: Launch inventory", Overrides: map[string]any{"network": map[string]any{"incoming": map[string]any{"httpFilter": map[string]any{"headers": map[string]any{"X-User": "alice"}}}}},
		WorkDoneToken: "start-1"},
	MethodSessionStart + ".result":   SessionStartResult{Session: kubeSession, Env: map[string]string{"API_TOKEN": "remote-secret-token", "LD_PRELOAD": "/run/user/1000/remocal/libremocal_bootstrap-0123456789abcdef.so", "REMOCAL_SESSION_SOCKET": "/run/user/1000/remocal/sessions/s2.sock"}, Wrapper: []string{"/usr/local/bin/remocal", "exec", "--join", "/run/user/1000/remocal/sessions/s2.sock", "--", "/home/alice/inventory/bin/inventory", "--debug"}, Warnings: []string{}},
	MethodSessionStop + ".params":    SessionParams{ID: "s1"},
	MethodSessionList + ".result":    SessionListResult{Sessions: []Session{session, kubeSession}},
	MethodSessionDetail + ".params":  SessionParams{ID: "s1"},
	MethodSessionDetail + ".result":  SessionDetail{Session: session, Subscriptions: []Subscription{{Port: 8080, LocalPort: 8080, Mode: wire.ModeSteal, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "alice"}}, Deliveries: 12}}, Processes: []Process{{PID: 9120, Exe: "/home/alice/inventory/bin/inventory"}}, Counters: map[string]uint64{"notified": 2310, "continued": 2180, "open": 41, "connect": 3}, Errors: []string{}},
	NotifySessionChanged + ".params": SessionChanged{Session: Session{ID: "s1", Target: "pid/4242", WorkspaceFolder: "/home/alice/inventory", Owner: "alice@laptop", State: StateDegraded, Reason: "lost the connection to the agent", StartedAt: started, Incoming: "mirror"}},
	NotifyConflict + ".params":       Conflict{SessionID: "s1", Target: "pid/4242", Port: 8080, Mode: wire.ModeSteal, Holder: &wire.Holder{Client: "bob@desk", Subscription: "s3", Port: 8080, Mode: wire.ModeSteal}, Message: "port 8080 is already stolen without a filter by bob@desk (subscription s3)"},
	NotifyTargetsChanged + ".params": TargetsChanged{Provider: "local", Namespace: "local"},
	// The operator's sessions, anybody's, on targets in view.
	NotifySessionChanged + ".remote.params": SessionChanged{Remote: &remoteBob},
	NotifySessionChanged + ".policy.params": SessionChanged{Session: Session{ID: "s2", Target: "deployment/inventory", Namespace: "shop", WorkspaceFolder: "/home/alice/inventory",
		Owner: "alice@laptop", State: StateDegraded, StartedAt: started, Incoming: "steal",
		Reason: "cannot steal port 8080 of the target for the program's port 8080: permission_denied: RemocalPolicy shop/no-steal denies it (rule incoming.blockSteal): stealing port 8080 of deployment/inventory is not allowed; mirror it instead (network.incoming.mode: mirror)",
		Policy: &wire.PolicyViolation{Kind: "RemocalPolicy", Namespace: "shop", Name: "no-steal", Rule: "incoming.blockSteal"}}},
	// The session followed its target to a new pod; the program keeps the
	// old one's environment and hostname until restarted.
	NotifySessionChanged + ".moved.params": SessionChanged{Session: Session{ID: "s2", Target: "deployment/inventory", Namespace: "shop", WorkspaceFolder: "/home/alice/inventory",
		Owner: "alice@laptop", State: StateActive, StartedAt: started, Incoming: "mirror",
		Resolved: "deployment/inventory (pod shop/inventory-7c9f8d5b6-9qz7m, container inventory)",
		Stale: &StaleTarget{From: "deployment/inventory (pod shop/inventory-7c9f8d5b6-2xk4q, container inventory)",
			Kept: []string{KeptEnv, KeptHostname}, Action: ActionRestart,
			Message: "the target is now deployment/inventory (host inventory-7c9f8d5b6-9qz7m, pid 7), not deployment/inventory (host inventory-7c9f8d5b6-2xk4q, pid 7): files, DNS and connections go to the new one, but programs already running keep the old one's environment variables and hostname (inventory-7c9f8d5b6-2xk4q); restart them to take the new one's"}}},
	NotifySessionChanged + ".remote-ended.params": SessionChanged{Remote: &RemoteSession{Name: "s-0bq3n8c2zd", Namespace: "shop", User: "bob",
		Client: "bob@desk", Target: "deployment/inventory", Phase: RemoteEnded, Ports: []RemotePort{}, Since: started}},
	MethodSessionList + ".remote.result": SessionListResult{Sessions: []Session{kubeSession}, Remote: []RemoteSession{remoteBob}},
	NotifyConflict + ".taken.params": Conflict{Target: "deployment/inventory", Port: 8080, Mode: wire.ModeSteal, RemoteSession: "shop/s-0bq3n8c2zd", Taken: true,
		Holder:  &wire.Holder{Client: "carol@desk", User: "carol", Session: "s-c4r0l00001", Subscription: "s9", Port: 8080, Mode: wire.ModeSteal, Since: &later},
		Message: "port 8080 of deployment/inventory was taken from bob (session shop/s-0bq3n8c2zd) by carol (carol@desk, session s-c4r0l00001) with an override"},
	MethodSessionStart + ".queues.result": SessionStartResult{Session: queueSession, Env: map[string]string{"INVOICES_STREAM": "{invoices}.remocal.session-s-4l1c3xq7de",
		"LD_PRELOAD": "/run/user/1000/remocal/libremocal_bootstrap-0123456789abcdef.so", "ORDERS_GROUP": "workers", "ORDERS_STREAM": "{orders}.remocal.session-s-4l1c3xq7de",
		"REMOCAL_SESSION_SOCKET": "/run/user/1000/remocal/sessions/s3.sock"}, Warnings: []string{}},
	MethodSessionList + ".queues.result":           SessionListResult{Sessions: []Session{queueSession}, Remote: []RemoteSession{remoteBobQueues}},
	NotifySessionChanged + ".remote-queues.params": SessionChanged{Remote: &remoteBobQueues},
	NotifyConfigChanged + ".params":                ConfigChanged{WorkspaceFolder: "/home/alice/inventory", File: "/home/alice/inventory/.remocal/config.json", Valid: true, Problems: []Problem{}},
}

// initializeResult is the part of LSP's InitializeResult the daemon fills
// (go.lsp.dev/protocol's type holds the experimental member as raw JSON).
type initializeResult struct {
	Capabilities initializeCapabilities `json:"capabilities"`
	ServerInfo   initializeServerInfo   `json:"serverInfo"`
}

type initializeCapabilities struct {
	Experimental InitializeExperimental `json:"experimental"`
}

type initializeServerInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// encode uses the daemon's codec, so the vectors are what goes on the wire.
func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := jsonrpc2.DefaultCodec.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	// The codec writes map keys in no particular order; sort them so the
	// stored form is stable (any order is valid on the wire).
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	pretty, err := json.MarshalIndent(generic, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(pretty, '\n')
}

func TestGoldenVectors(t *testing.T) {
	names := make([]string, 0, len(vectors))
	for n := range vectors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			v := vectors[name]
			got := encode(t, v)
			path := filepath.Join(vectorDir, strings.ReplaceAll(name, "/", ".")+".json")
			if *update {
				os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read vector (go test -update creates it): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("encoding differs from %s (-stored +encoded):\n%s", path, diff)
			}
			back := reflect.New(reflect.TypeOf(v))
			if err := jsonrpc2.DefaultCodec.Unmarshal(want, back.Interface()); err != nil {
				t.Fatal(err)
			}
			if name == MethodConfigResolve+".result" {
				return // Config decodes as a generic map; the encoding check covers it
			}
			if diff := cmp.Diff(v, back.Elem().Interface()); diff != "" {
				t.Errorf("decoding %s differs (-want +got):\n%s", path, diff)
			}
		})
	}
}

// TestEveryMethodHasVectors keeps the vectors complete.
func TestEveryMethodHasVectors(t *testing.T) {
	for _, m := range []string{MethodDaemonInfo, MethodDaemonShutdown, MethodNamespaces, MethodTargets, MethodConfigResolve,
		MethodConfigVerify, MethodSessionStart, MethodSessionStop, MethodSessionList, MethodSessionDetail,
		MethodSessionKill, "initialize", NotifySessionChanged, NotifyConflict, NotifyTargetsChanged, NotifyConfigChanged} {
		found := false
		for name := range vectors {
			if filepath.Ext(name) != "" && name[:len(name)-len(filepath.Ext(name))] == m {
				found = true
			}
		}
		if !found {
			t.Errorf("no golden vector for %s", m)
		}
	}
}

func TestErrorData(t *testing.T) {
	e := Errorf(CodeInvalidConfig, "bad")
	e.Problems = []Problem{{Path: "$.target", Message: "x"}}
	var d ErrorData
	if err := json.Unmarshal(e.Data(), &d); err != nil || d.Reason != "invalid_config" || len(d.Problems) != 1 {
		t.Fatalf("data = %s, %v", e.Data(), err)
	}
	if Reason(12345) != "unknown" {
		t.Error("unknown codes have the reason \"unknown\"")
	}
}
