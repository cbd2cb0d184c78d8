package kube

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/remocal/remocal/protocol/config"
)

// Dangerous targets are refused with what was wrong and how to allow it;
// the configuration allows what is the user's call, and nothing else.
func TestDangerousTargetsRefused(t *testing.T) {
	node := func(name string, labels map[string]string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	ns := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	target := func(namespace, nodeName string, mod func(*corev1.Pod)) *Resolved {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: namespace}, Spec: corev1.PodSpec{NodeName: nodeName}}
		if mod != nil {
			mod(p)
		}
		return &Resolved{Ref: "pod/p", Namespace: namespace, Pod: p, Container: "app"}
	}
	objects := func() []runtime.Object {
		return []runtime.Object{node("worker", nil), node("cp", map[string]string{"node-role.kubernetes.io/control-plane": ""}),
			node("old-master", map[string]string{"node-role.kubernetes.io/master": ""}),
			ns("shop", nil), ns("kube-system", nil), ns("payments", map[string]string{LabelNamespaceTargets: "deny"})}
	}
	hostNet := func(p *corev1.Pod) { p.Spec.HostNetwork = true }
	mirror := func(p *corev1.Pod) { p.Annotations = map[string]string{"kubernetes.io/config.mirror": "abc"} }
	all := config.AllowTargets{KubeSystem: true, StaticPods: true, ControlPlane: true}
	for _, tc := range []struct {
		name  string
		r     *Resolved
		allow config.AllowTargets
		want  []string // empty: allowed
	}{
		{"ordinary pod", target("shop", "worker", nil), config.AllowTargets{}, nil},
		{"kube-system", target("kube-system", "worker", nil), config.AllowTargets{}, []string{"pod kube-system/p is in namespace kube-system", `"allowTargets": {"kubeSystem": true}`}},
		{"kube-system allowed", target("kube-system", "worker", nil), config.AllowTargets{KubeSystem: true}, nil},
		{"static pod", target("shop", "worker", mirror), config.AllowTargets{}, []string{"static pod", `"staticPods": true`}},
		{"static pod allowed", target("shop", "worker", mirror), config.AllowTargets{StaticPods: true}, nil},
		{"control-plane node", target("shop", "cp", nil), config.AllowTargets{}, []string{"control-plane node", "node-role.kubernetes.io/control-plane", `"controlPlane": true`}},
		{"master node", target("shop", "old-master", nil), config.AllowTargets{}, []string{"node-role.kubernetes.io/master"}},
		{"control-plane allowed", target("shop", "cp", nil), config.AllowTargets{ControlPlane: true}, nil},
		{"hostNetwork, whatever is allowed", target("shop", "worker", hostNet), all, []string{"hostNetwork", "node's network"}},
		{"admin's namespace, whatever is allowed", target("payments", "worker", nil), all, []string{"namespace payments", "remocal.dev/targets=deny", "kubectl label namespace payments remocal.dev/targets-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := &Env{Client: fake.NewClientset(objects()...), Namespace: "shop"}
			err := checkTarget(context.Background(), env, tc.r, tc.allow)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrTargetRefused) {
				t.Fatalf("err = %v, want ErrTargetRefused", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// An account that may not read nodes or namespaces still gets its
// session: those checks are a safety net, not access control.
func TestRefusalChecksNeedNoExtraPermission(t *testing.T) {
	env := &Env{Client: fake.NewClientset(), Namespace: "shop"} // no node, no namespace objects: reads fail
	r := &Resolved{Ref: "pod/p", Namespace: "shop", Container: "app",
		Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop"}, Spec: corev1.PodSpec{NodeName: "n"}}}
	if err := checkTarget(context.Background(), env, r, config.AllowTargets{}); err != nil {
		t.Fatal(err)
	}
}
