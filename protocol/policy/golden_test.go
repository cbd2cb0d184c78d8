package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in protocol/testdata/policy")

// vectorDir is shared with other clients of the policies.
const vectorDir = "../testdata/policy"

var full = RemocalPolicy{
	TypeMeta:   metav1.TypeMeta{APIVersion: SchemeGroupVersion.String(), Kind: KindPolicy},
	ObjectMeta: metav1.ObjectMeta{Name: "checkout-rules", Namespace: "shop"},
	Spec: Spec{
		Targets: Targets{
			Names:    []string{"deployment/checkout", "pod/checkout-*/container/app"},
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}},
		},
		Incoming: &Incoming{BlockUnfilteredSteal: true, RequireHeader: &HeaderRequirement{Name: "x-user", Value: "{{user}}"}, ForbidOverride: true},
		Outgoing: &Outgoing{
			Allow: []Destination{{CIDR: "10.96.0.0/12"}, {Host: "*.shop.svc.cluster.local", Ports: []int32{5432, 6379}}},
			Block: []Destination{{Host: "payments-db.shop.svc.cluster.local"}},
		},
		Env:   &Env{Exclude: []string{"*_SECRET", "DATABASE_PASSWORD"}},
		Files: &Files{Local: []string{"/etc/resolv.conf"}, ReadOnly: []string{"/data"}, NotFound: []string{"/var/run/secrets"}},
	},
}

var vectors = map[string]runtime.Object{
	"remocalpolicy": &full,
	"remocalclusterpolicy": &RemocalClusterPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: SchemeGroupVersion.String(), Kind: KindClusterPolicy},
		ObjectMeta: metav1.ObjectMeta{Name: "no-mirror-in-prod"},
		Spec:       Spec{Targets: Targets{Namespaces: []string{"prod-*"}}, Incoming: &Incoming{BlockMirror: true, BlockSteal: true}},
	},
	"remocalpolicy-list": &RemocalPolicyList{
		TypeMeta: metav1.TypeMeta{APIVersion: SchemeGroupVersion.String(), Kind: "RemocalPolicyList"},
		ListMeta: metav1.ListMeta{ResourceVersion: "42"}, Items: []RemocalPolicy{full},
	},
}

func TestGoldenVectors(t *testing.T) {
	for name, obj := range vectors {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(obj, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			file := filepath.Join(vectorDir, name+".json")
			if *update {
				if err := os.MkdirAll(vectorDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./protocol/policy -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s changed (-want +got):\n%s", file, cmp.Diff(string(want), string(got)))
			}
			back := reflect.New(reflect.TypeOf(obj).Elem()).Interface().(runtime.Object)
			if err := json.Unmarshal(want, back); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(obj, back); d != "" {
				t.Errorf("decoding %s (-vector +decoded):\n%s", file, d)
			}
			cp := obj.DeepCopyObject()
			if d := cmp.Diff(obj, cp); d != "" {
				t.Errorf("deep copy differs:\n%s", d)
			}
		})
	}
}

func TestDeepCopySharesNothing(t *testing.T) {
	cp := full.DeepCopy()
	cp.Spec.Targets.Names[0] = "changed"
	cp.Spec.Targets.Selector.MatchLabels["team"] = "changed"
	cp.Spec.Incoming.RequireHeader.Value = "changed"
	cp.Spec.Outgoing.Allow[1].Ports[0] = 1
	cp.Spec.Env.Exclude[0] = "changed"
	cp.Spec.Files.NotFound[0] = "changed"
	if full.Spec.Targets.Names[0] == "changed" || full.Spec.Targets.Selector.MatchLabels["team"] == "changed" ||
		full.Spec.Incoming.RequireHeader.Value == "changed" || full.Spec.Outgoing.Allow[1].Ports[0] == 1 ||
		full.Spec.Env.Exclude[0] == "changed" || full.Spec.Files.NotFound[0] == "changed" {
		t.Errorf("the copy shares memory with the original: %+v", full.Spec)
	}
}
