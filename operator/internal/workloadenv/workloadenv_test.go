package workloadenv

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// The fake clientset is the seam for what the apiserver decides
// (conflicts, failures); cluster_test.go runs the same calls against the
// harness cluster with real controllers.

const ns = "shop"

func template(env ...corev1.EnvVar) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "w"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "worker", Image: "x", Env: env},
			{Name: "sidecar", Image: "y", Env: []corev1.EnvVar{{Name: "STREAM", Value: "sidecar's"}}},
		}},
	}
}

func lit(n, v string) corev1.EnvVar { return corev1.EnvVar{Name: n, Value: v} }

func baseEnv() []corev1.EnvVar {
	return []corev1.EnvVar{
		lit("STREAM", "orders"), lit("GROUP", "workers"), lit("OTHER", "x"),
		{Name: "FROM_CM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "stream"}}},
	}
}

func objects(kind string, env ...corev1.EnvVar) runtime.Object {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "w"}}
	if kind == StatefulSet {
		return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "w", UID: "sts-uid"},
			Spec: appsv1.StatefulSetSpec{Selector: sel, Template: template(env...)}}
	}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "w", UID: "dep-uid"},
		Spec: appsv1.DeploymentSpec{Selector: sel, Template: template(env...)}}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// state is the workload's first container's env and its annotation.
func state(t *testing.T, cs *fake.Clientset, ref Ref) (map[string]string, string) {
	t.Helper()
	w, err := get(ctxT(t), cs, ref)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range w.template().Spec.Containers[0].Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	if v := w.template().Spec.Containers[1].Env[0].Value; v != "sidecar's" {
		t.Errorf("the sidecar's STREAM changed to %q", v)
	}
	return env, w.meta().Annotations[Annotation]
}

func updates(cs *fake.Clientset) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == "update" {
			n++
		}
	}
	return n
}

func TestSetRecordsOriginalsOnceAndRestores(t *testing.T) {
	for _, kind := range []string{Deployment, StatefulSet} {
		t.Run(kind, func(t *testing.T) {
			ctx := ctxT(t)
			cs := fake.NewClientset(objects(kind, baseEnv()...))
			ref := Ref{Namespace: ns, Kind: kind, Name: "w", Container: "worker"}

			if err := Set(ctx, cs, ref, "orders-worker/orders", map[string]string{"STREAM": "{orders}.remocal.deployed"}); err != nil {
				t.Fatal(err)
			}
			env, ann := state(t, cs, ref)
			if env["STREAM"] != "{orders}.remocal.deployed" || env["GROUP"] != "workers" || env["OTHER"] != "x" {
				t.Errorf("after Set, env %v", env)
			}
			if want := `{"orders-worker/orders":{"STREAM":"orders"}}`; ann != want {
				t.Errorf("annotation %s, want %s", ann, want)
			}
			// Again, as an operator restarted after the first Set would:
			// the record keeps the original, a variable new to it is added.
			if err := Set(ctx, cs, ref, "orders-worker/orders", map[string]string{"STREAM": "second", "GROUP": "g2"}); err != nil {
				t.Fatal(err)
			}
			env, _ = state(t, cs, ref)
			if env["STREAM"] != "second" || env["GROUP"] != "g2" {
				t.Errorf("after the second Set, env %v", env)
			}
			rec, err := Recorded(ctx, cs, ref)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]map[string]string{"orders-worker/orders": {"STREAM": "orders", "GROUP": "workers"}}
			if len(rec) != 1 || !maps.Equal(rec["orders-worker/orders"], want["orders-worker/orders"]) {
				t.Errorf("Recorded %v, want %v", rec, want)
			}
			// Reading them now gives the changed values, not the originals.
			got, err := Read(ctx, cs, ref, []string{"STREAM"})
			if err != nil || got["STREAM"] != "second" {
				t.Errorf("Read %v %v", got, err)
			}

			if err := Restore(ctx, cs, ref, "orders-worker/orders"); err != nil {
				t.Fatal(err)
			}
			env, ann = state(t, cs, ref)
			if !maps.Equal(env, map[string]string{"STREAM": "orders", "GROUP": "workers", "OTHER": "x"}) || ann != "" {
				t.Errorf("after Restore, env %v, annotation %q", env, ann)
			}
			if rec, err := Recorded(ctx, cs, ref); err != nil || len(rec) != 0 {
				t.Errorf("after Restore, Recorded %v %v", rec, err)
			}
			// A second Restore (the operator restarted after the first)
			// writes nothing.
			n := updates(cs)
			if err := Restore(ctx, cs, ref, "orders-worker/orders"); err != nil {
				t.Fatal(err)
			}
			if updates(cs) != n {
				t.Errorf("a Restore with nothing recorded updated the workload")
			}
		})
	}
}

// A Set whose update fails leaves nothing behind: neither the record nor
// the new value (they travel in one update); a Set after it records the
// true original.
func TestFailedSetLeavesNothing(t *testing.T) {
	ctx := ctxT(t)
	cs := fake.NewClientset(objects(Deployment, baseEnv()...))
	ref := Ref{Namespace: ns, Kind: Deployment, Name: "w"}
	fail := true
	cs.PrependReactor("update", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		if fail {
			return true, nil, apierrors.NewServiceUnavailable("etcd is gone")
		}
		return false, nil, nil
	})
	err := Set(ctx, cs, ref, "k", map[string]string{"STREAM": "new"})
	if !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("Set: %v, want the apiserver's error", err)
	}
	env, ann := state(t, cs, ref)
	if env["STREAM"] != "orders" || ann != "" {
		t.Fatalf("after a failed Set: env %v, annotation %q", env, ann)
	}
	fail = false
	if err := Set(ctx, cs, ref, "k", map[string]string{"STREAM": "new"}); err != nil {
		t.Fatal(err)
	}
	if env, ann := state(t, cs, ref); env["STREAM"] != "new" || ann != `{"k":{"STREAM":"orders"}}` {
		t.Errorf("env %v, annotation %s", env, ann)
	}
}

// Another writer between the read and the update: the update is refused
// by resourceVersion, and Set reads again and keeps the other's change.
func TestSetRetriesOnConflict(t *testing.T) {
	ctx := ctxT(t)
	cs := fake.NewClientset(objects(Deployment, baseEnv()...))
	ref := Ref{Namespace: ns, Kind: Deployment, Name: "w"}
	conflicts := 2
	cs.PrependReactor("update", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			return false, nil, nil
		}
		conflicts--
		// Somebody scales the Deployment meanwhile.
		obj, err := cs.Tracker().Get(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, ns, "w")
		if err != nil {
			return true, nil, err
		}
		d := obj.(*appsv1.Deployment).DeepCopy()
		d.Spec.Replicas = ptr(int32(5 - conflicts))
		if err := cs.Tracker().Update(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, d, ns); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, "w", errors.New("the object has been modified"))
	})
	if err := Set(ctx, cs, ref, "k", map[string]string{"STREAM": "new"}); err != nil {
		t.Fatal(err)
	}
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, "w", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 5 || d.Spec.Template.Spec.Containers[0].Env[0].Value != "new" || d.Annotations[Annotation] != `{"k":{"STREAM":"orders"}}` {
		t.Errorf("after the conflicts: replicas %d, env %v, annotation %q", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Env, d.Annotations[Annotation])
	}
	if got := updates(cs); got != 3 {
		t.Errorf("%d updates, want 3 (2 refused)", got)
	}
}

func ptr[T any](v T) *T { return &v }

func TestRefusals(t *testing.T) {
	ctx := ctxT(t)
	cs := fake.NewClientset(objects(Deployment, baseEnv()...), &corev1.Namespace{})
	ref := Ref{Namespace: ns, Kind: Deployment, Name: "w", Container: "worker"}
	if err := Set(ctx, cs, ref, "a", map[string]string{"STREAM": "s-a"}); err != nil {
		t.Fatal(err)
	}
	before := updates(cs)
	for _, tc := range []struct {
		name   string
		call   func() error
		reason Reason
		words  []string
	}{
		{"valueFrom", func() error { _, err := Read(ctx, cs, ref, []string{"GROUP", "FROM_CM"}); return err },
			ReasonValueFrom, []string{"FROM_CM", "ConfigMap cfg", "literal value"}},
		{"valueFrom in Set", func() error { return Set(ctx, cs, ref, "b", map[string]string{"GROUP": "g", "FROM_CM": "x"}) },
			ReasonValueFrom, []string{"FROM_CM"}},
		{"missing", func() error { _, err := Read(ctx, cs, ref, []string{"NOPE"}); return err },
			ReasonMissing, []string{"NOPE", "does not declare it", "literal value"}},
		{"missing in Set", func() error { return Set(ctx, cs, ref, "b", map[string]string{"NOPE": "x"}) },
			ReasonMissing, []string{"NOPE"}},
		{"unknown container", func() error {
			_, err := Read(ctx, cs, Ref{Namespace: ns, Kind: Deployment, Name: "w", Container: "wrker"}, []string{"STREAM"})
			return err
		}, ReasonUnknownContainer, []string{`no container "wrker"`, "worker, sidecar"}},
		{"unknown kind", func() error {
			_, err := Read(ctx, cs, Ref{Namespace: ns, Kind: "daemonset", Name: "w"}, []string{"STREAM"})
			return err
		}, ReasonUnknownKind, []string{"daemonset"}},
		{"empty key", func() error { return Set(ctx, cs, ref, "", map[string]string{"GROUP": "g"}) },
			ReasonBadKey, []string{"key is empty"}},
		{"held by another key", func() error { return Set(ctx, cs, ref, "b", map[string]string{"STREAM": "s-b"}) },
			ReasonHeldByOtherKey, []string{"STREAM", `"a"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var e *Error
			if !errors.As(err, &e) || e.Reason != tc.reason {
				t.Fatalf("error %v, want an *Error with reason %s", err, tc.reason)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if updates(cs) != before {
		t.Errorf("a refused call updated the workload")
	}
	if env, _ := state(t, cs, ref); env["STREAM"] != "s-a" || env["GROUP"] != "workers" {
		t.Errorf("after the refusals, env %v", env)
	}

	_, err := Read(ctx, cs, Ref{Namespace: ns, Kind: StatefulSet, Name: "w"}, []string{"STREAM"})
	if !errors.Is(err, ErrNotFound) || !apierrors.IsNotFound(err) {
		t.Errorf("a missing workload: %v, want ErrNotFound", err)
	}
}

// A record edited by hand is refused, not overwritten.
func TestBadRecord(t *testing.T) {
	obj := objects(Deployment, baseEnv()...).(*appsv1.Deployment)
	obj.Annotations = map[string]string{Annotation: `{"k": "orders"}`}
	cs := fake.NewClientset(obj)
	ref := Ref{Namespace: ns, Kind: Deployment, Name: "w"}
	for _, err := range []error{
		Set(ctxT(t), cs, ref, "k", map[string]string{"STREAM": "x"}),
		Restore(ctxT(t), cs, ref, "k"),
	} {
		var e *Error
		if !errors.As(err, &e) || e.Reason != ReasonBadRecord {
			t.Errorf("%v, want ReasonBadRecord", err)
		}
	}
	_, ann := state(t, cs, ref)
	var v any
	if json.Unmarshal([]byte(ann), &v) != nil || ann != `{"k": "orders"}` {
		t.Errorf("the record was rewritten: %s", ann)
	}
}
