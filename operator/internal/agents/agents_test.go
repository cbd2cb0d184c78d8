package agents

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/operator/internal/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pod(name string, ready bool) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{"app": "api"}, CreationTimestamp: metav1.Now()},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

func next(t *testing.T, ch <-chan []broker.Pod) []string {
	t.Helper()
	select {
	case pods, ok := <-ch:
		if !ok {
			t.Fatal("the pods channel closed")
		}
		var names []string
		for _, p := range pods {
			names = append(names, p.Name)
		}
		return names
	case <-time.After(20 * time.Second):
		t.Fatal("no pod set")
		return nil
	}
}

// The broker follows a deployment's ready pods: the set now, then one per
// change; the channel closes with the context.
func TestPodsFollowsTheReadyPods(t *testing.T) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}}}
	cs := fake.NewClientset(dep, pod("api-a", true), pod("api-b", false))
	c := New(Config{Env: &kube.Env{Client: cs}, Namespace: "remocal-system"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.Pods(ctx, "shop", "deployment.api")
	if err != nil {
		t.Fatal(err)
	}
	if got := next(t, ch); len(got) != 1 || got[0] != "api-a" {
		t.Fatalf("first set = %v, want the ready pod alone", got)
	}
	if _, err := cs.CoreV1().Pods("shop").UpdateStatus(ctx, pod("api-b", true), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := next(t, ch); len(got) != 2 {
		t.Fatalf("after api-b became ready: %v", got)
	}
	if err := cs.CoreV1().Pods("shop").Delete(ctx, "api-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := next(t, ch); len(got) != 1 || got[0] != "api-b" {
		t.Fatalf("after api-a went: %v", got)
	}
	cancel()
	for range ch { // closed once the watch has stopped
	}
}

func TestUnknownTargetsAreNotFound(t *testing.T) {
	c := New(Config{Env: &kube.Env{Client: fake.NewClientset()}, Namespace: "remocal-system"})
	for _, target := range []string{"deployment.nope", "pod.nope", "gizmo.x", "deployment"} {
		if _, err := c.Pods(context.Background(), "shop", target); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", target, err)
		}
	}
}
