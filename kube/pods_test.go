package kube

import (
	"context"
	"errors"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/protocol/config"
)

func TestReadyPodsOfAWorkloadOldestFirst(t *testing.T) {
	labels := map[string]string{"app": "api"}
	pod := func(name string, age time.Duration, ready bool) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: labels, CreationTimestamp: metav1.NewTime(time.Now().Add(-age))},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "api"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
				{Name: "api", Ready: ready, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
		}
		return p
	}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}}}
	env := &Env{Client: fake.NewClientset(dep, pod("api-young", time.Minute, true), pod("api-old", time.Hour, true), pod("api-starting", 0, false)), Namespace: "shop"}

	pods, err := ReadyPods(context.Background(), env, "shop", config.TargetDeployment, "api")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	if len(names) != 2 || names[0] != "api-old" || names[1] != "api-young" {
		t.Errorf("ready pods %v, want [api-old api-young]", names)
	}

	if pods, err := ReadyPods(context.Background(), env, "shop", config.TargetPod, "api-starting"); err != nil || len(pods) != 0 {
		t.Errorf("a pod not ready: %v, %v", pods, err)
	}
	if _, err := ReadyPods(context.Background(), env, "shop", config.TargetDeployment, "nope"); !errors.Is(err, connect.ErrTargetNotFound) {
		t.Errorf("unknown deployment: %v", err)
	}
}
