package operator

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
	"github.com/remocal/remocal/protocol/operator"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func readyPod(name string, labels map[string]string, age time.Duration) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: labels, CreationTimestamp: metav1.NewTime(time.Now().Add(-age))},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "api:1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "api", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
}

func TestTargetsFromTheCluster(t *testing.T) {
	labels := map[string]string{"app": "api"}
	two := int32(2)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"},
		Spec: appsv1.DeploymentSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api"}}}}},
		Status: appsv1.DeploymentStatus{ReadyReplicas: 2}}
	env := &kube.Env{Client: fake.NewClientset(dep, readyPod("api-b", labels, time.Minute), readyPod("api-a", labels, time.Hour)), Namespace: "default"}
	k := &kubeTargets{env: env}

	list, err := k.List(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]operator.Target{}
	for _, tg := range list {
		byName[tg.Name] = tg
	}
	d, ok := byName["deployment.api"]
	if !ok || d.Namespace != "shop" || d.Spec.Kind != "deployment" || d.Spec.Name != "api" || !d.Status.Ready ||
		len(d.Status.Pods) != 2 || d.Status.Pods[0] != "api-a" {
		t.Errorf("deployment target %+v (all: %v)", d, byName)
	}
	if p, ok := byName["pod.api-a"]; !ok || len(p.Status.Pods) != 1 || p.Status.Pods[0] != "api-a" {
		t.Errorf("pod target %+v", p)
	}

	got, err := k.Get(context.Background(), "shop", "deployment.api")
	if err != nil || got.Status.Status != "2/2 ready" || len(got.Status.Pods) != 2 {
		t.Errorf("get: %+v, %v", got, err)
	}
	for _, name := range []string{"deployment.nope", "gadget.api", "api", "deployment."} {
		if _, err := k.Get(context.Background(), "shop", name); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("get %q: %v, want not found", name, err)
		}
	}
}
