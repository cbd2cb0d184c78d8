package policies

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/remocal/remocal/protocol/policy"
)

func object(kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(policy.SchemeGroupVersion.String())
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// The watcher over a fake dynamic client (the seam; test/e2e/operator's
// TestPolicies runs it against the cluster's API server): which policies
// apply, changes called back, an invalid policy refusing.
func TestWatcher(t *testing.T) {
	scheme := runtime.NewScheme()
	lists := map[schema.GroupVersionResource]string{
		PolicyResource: policy.KindPolicy + "List", ClusterPolicyResource: policy.KindClusterPolicy + "List",
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, lists,
		object(policy.KindPolicy, "shop", "own-header", map[string]any{
			"targets":  map[string]any{"names": []any{"deployment/api"}},
			"incoming": map[string]any{"requireHeader": map[string]any{"name": "x-user", "value": "{{user}}"}},
		}),
		object(policy.KindPolicy, "other", "elsewhere", map[string]any{"incoming": map[string]any{"blockSteal": true}}),
		object(policy.KindClusterPolicy, "", "no-mirror", map[string]any{"incoming": map[string]any{"blockMirror": true}}),
	)
	w := New(dyn, slog.New(slog.NewTextHandler(io.Discard, nil)))
	changed := make(chan struct{}, 8)
	w.OnChange(func() { changed <- struct{}{} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer func() {
		cancel()
		w.Shutdown()
	}()
	w.Start(ctx)
	if err := w.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	api := policy.Target{Namespace: "shop", Kind: "deployment", Name: "api"}
	set, err := w.For(api)
	if err != nil || len(set) != 2 || set[0].Ref.Name != "no-mirror" || set[1].Ref.Name != "own-header" ||
		set[1].Spec.Incoming.RequireHeader.Value != "{{user}}" {
		t.Fatalf("For(api) = %+v, %v", set, err)
	}
	if set, _ := w.For(policy.Target{Namespace: "shop", Kind: "deployment", Name: "web"}); len(set) != 1 {
		t.Errorf("For(web) = %+v, want the cluster policy only", set)
	}

	bad := object(policy.KindPolicy, "shop", "bad", map[string]any{
		"targets": map[string]any{"selector": map[string]any{"matchExpressions": []any{map[string]any{"key": "a", "operator": "Bogus"}}}},
	})
	if _, err := dyn.Resource(PolicyResource).Namespace("shop").Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The callback may also come for the initial list's objects, which
	// the informer hands out after it reports synced: wait for the
	// creation to count.
	for {
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatal("no change called back after a policy was created")
		}
		_, err = w.For(api)
		var d *policy.Denial
		if errors.As(err, &d) {
			if d.Rule != policy.RuleInvalid || d.Policy.Name != "bad" || d.Policy.Namespace != "shop" {
				t.Errorf("with an invalid policy: %v", err)
			}
			return
		}
	}
}
