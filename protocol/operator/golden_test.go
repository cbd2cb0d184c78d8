package operator

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/protocol/wire"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in protocol/testdata/operator")

// vectorDir is shared with other clients of the API, which decode and
// re-encode the same files.
const vectorDir = "../testdata/operator"

var (
	started = metav1.NewTime(time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC))
	beat    = metav1.NewTime(time.Date(2026, 12, 7, 9, 41, 12, 0, time.UTC))
	expires = metav1.NewTime(time.Date(2026, 12, 7, 9, 46, 12, 0, time.UTC))
)

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: SchemeGroupVersion.String(), Kind: kind}
}

var target = Target{
	TypeMeta:   typeMeta(KindTarget),
	ObjectMeta: metav1.ObjectMeta{Name: TargetName("deployment", "inventory"), Namespace: "shop", CreationTimestamp: started},
	Spec:       TargetSpec{Kind: "deployment", Name: "inventory", Containers: []string{"inventory", "migrate"}},
	Status: TargetStatus{Ready: true, Status: "2/3 ready", Sessions: 2,
		Pods: []string{"inventory-7c9f8d5b6-2xk4q", "inventory-7c9f8d5b6-9wq7z"},
		Policies: []AppliedPolicy{{Kind: "RemocalPolicy", Namespace: "shop", Name: "checkout-rules",
			Rules: []string{"incoming: steal only with an HTTP filter", `incoming: a steal must filter on header X-User = "{{user}}"`}}}},
}

var session = Session{
	TypeMeta:   typeMeta(KindSession),
	ObjectMeta: metav1.ObjectMeta{Name: "s-4k2m9q7x1b", Namespace: "shop", ResourceVersion: "17", CreationTimestamp: started},
	Spec: SessionSpec{
		User:      UserInfo{Username: "alice", UID: "7b1c", Groups: []string{"developers", "system:authenticated"}},
		Client:    ClientInfo{Name: "alice@laptop", Host: "laptop", Tool: "remocal exec", Version: "0.3.0"},
		Target:    "deployment.inventory",
		Container: "inventory",
	},
	Status: SessionStatus{
		Phase: PhaseActive,
		Pods:  []string{"inventory-7c9f8d5b6-2xk4q", "inventory-7c9f8d5b6-9wq7z"}, Primary: "inventory-7c9f8d5b6-2xk4q",
		PrimaryReason: "the oldest ready pod",
		Ports: []PortStatus{
			{Port: 8080, Mode: wire.ModeSteal, Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "alice"}}, Lock: true, Since: &started},
			{Port: 9090, Mode: wire.ModeMirror},
		},
		QueueSplits: []QueueSplitStatus{{Consumer: "orders-worker", Queue: "orders", Mode: queuesplit.ModeSteal,
			Filter: &queuesplit.Filter{Headers: map[string]string{"tenant": "a"}}, Since: started, Delivered: 412}},
		StartTime: started, LastHeartbeat: beat,
		Counters: Counters{IncomingConnections: 14, IncomingRequests: 310, OutgoingConnections: 6, BytesIn: 81920, BytesOut: 20480},
	},
}

var disconnected = func() Session {
	s := *session.DeepCopy()
	s.Name, s.ResourceVersion = "s-0bq3n8c2zd", "18"
	s.Spec.User = UserInfo{Username: "bob", Groups: []string{"developers"}}
	s.Spec.Client = ClientInfo{Name: "bob@desk", Tool: "vscode"}
	s.Status.Phase, s.Status.ExpiresAt, s.Status.Ports = PhaseDisconnected, &expires, nil
	return s
}()

// vectors holds one example of every type, named by file.
var vectors = map[string]runtime.Object{
	"target":      &target,
	"target-list": &TargetList{TypeMeta: typeMeta("TargetList"), ListMeta: metav1.ListMeta{ResourceVersion: "3"}, Items: []Target{target}},
	"session":     &session,
	"session-list": &SessionList{TypeMeta: typeMeta("SessionList"), ListMeta: metav1.ListMeta{ResourceVersion: "18"},
		Items: []Session{session, disconnected}},
	"operatorstatus": &OperatorStatus{
		TypeMeta:   typeMeta(KindOperatorStatus),
		ObjectMeta: metav1.ObjectMeta{Name: StatusName},
		Status: OperatorState{Version: "0.3.0", Leader: "remocal-operator-6d8f9-abcde", Self: "remocal-operator-6d8f9-abcde", Sessions: 2, Healthy: false,
			Agents: []AgentStatus{
				{Pod: "shop/inventory-7c9f8d5b6-2xk4q", Agent: "remocal-agent-1f2e3d4c5b6a7980", Sessions: 2},
				{Pod: "shop/orders-5d6c7b8a9-q1w2e", Agent: "remocal-agent-0a9b8c7d6e5f4a3b", IdleSince: &beat},
			},
			Problems: []string{"agent for shop/orders-5d6c7b8a9-q1w2e is not ready: image pull back-off"},
			Targets:  []TargetSessions{{Namespace: "shop", Target: "deployment/inventory", Sessions: 2, Users: []string{"alice", "bob"}}},
			RecentDenials: []Denial{{Time: beat, User: "bob", Namespace: "shop", Target: "deployment/checkout", What: "steal port 8080",
				Policy: "RemocalPolicy shop/own-header", Rule: "incoming.requireHeader",
				Message: `stealing port 8080 of deployment/checkout needs an HTTP filter on header X-User with a value matching "bob"`}},
			Usage: []Usage{{Day: "2026-12-07", Namespace: "shop", Target: "deployment/inventory", User: "alice", Sessions: 3, Seconds: 5412.5}},
			QueueSplits: []QueueState{{Namespace: "shop", Consumer: "orders-worker", Queue: "orders", Phase: queuesplit.PhaseSplitting,
				Routed: 1240, Deployed: 828, Sessions: []QueueSessionState{{Session: "s-4k2m9q7x1b", User: "alice", Mode: queuesplit.ModeSteal,
					Filter: &queuesplit.Filter{Headers: map[string]string{"tenant": "a"}}, Delivered: 412}}}}},
	},
}

// codec is the API server's JSON serializer, so the vectors are what a
// client receives.
func codec(t *testing.T) runtime.Codec {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	f := serializer.NewCodecFactory(scheme)
	info, ok := runtime.SerializerInfoForMediaType(f.SupportedMediaTypes(), runtime.ContentTypeJSON)
	if !ok {
		t.Fatal("no JSON serializer")
	}
	return f.CodecForVersions(info.Serializer, f.UniversalDeserializer(), SchemeGroupVersion, SchemeGroupVersion)
}

func encode(t *testing.T, c runtime.Codec, o runtime.Object) []byte {
	t.Helper()
	b, err := runtime.Encode(c, o)
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return append(bytes.TrimSpace(pretty.Bytes()), '\n')
}

func TestGoldenVectors(t *testing.T) {
	c := codec(t)
	names := make([]string, 0, len(vectors))
	for n := range vectors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			v := vectors[name]
			got := encode(t, c, v)
			path := filepath.Join(vectorDir, name+".json")
			if *update {
				if err := os.MkdirAll(vectorDir, 0o755); err != nil {
					t.Fatal(err)
				}
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
			// Decode the stored file and encode it again: nothing is lost.
			back, err := runtime.Decode(c, want)
			if err != nil {
				t.Fatalf("decode %s: %v", path, err)
			}
			if reflect.TypeOf(back) != reflect.TypeOf(v) {
				t.Fatalf("%s decodes as %T, want %T", path, back, v)
			}
			if diff := cmp.Diff(v, back); diff != "" {
				t.Errorf("decoding %s differs (-want +got):\n%s", path, diff)
			}
			if again := encode(t, c, back); !bytes.Equal(again, want) {
				t.Errorf("re-encoding %s differs:\n%s", path, cmp.Diff(string(want), string(again)))
			}
		})
	}
}

// TestDeepCopy checks that a copy equals its original and shares no
// memory with it: changing every slice, map and pointer of the copy leaves
// the original as it was.
func TestDeepCopy(t *testing.T) {
	for name, v := range vectors {
		t.Run(name, func(t *testing.T) {
			before := encode(t, codec(t), v)
			cp := v.DeepCopyObject()
			if diff := cmp.Diff(v, cp); diff != "" {
				t.Fatalf("copy differs (-orig +copy):\n%s", diff)
			}
			scribble(reflect.ValueOf(cp))
			if after := encode(t, codec(t), v); !bytes.Equal(before, after) {
				t.Errorf("changing the copy changed the original:\n%s", cmp.Diff(string(before), string(after)))
			}
		})
	}
	var nilTarget *Target
	if nilTarget.DeepCopyObject() != nil {
		t.Error("a nil object copies to a nil interface")
	}
}

// scribble overwrites everything reachable through v's slices, maps and
// pointers.
func scribble(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			scribble(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				scribble(v.Field(i))
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			scribble(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if v.Type().Elem().Kind() == reflect.String {
				v.SetMapIndex(k, reflect.ValueOf("scribbled").Convert(v.Type().Elem()))
			}
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString("scribbled")
		}
	case reflect.Int, reflect.Int64, reflect.Uint16, reflect.Uint64:
		if v.CanSet() {
			if v.CanInt() {
				v.SetInt(99)
			} else {
				v.SetUint(99)
			}
		}
	case reflect.Bool:
		if v.CanSet() {
			v.SetBool(!v.Bool())
		}
	}
}
