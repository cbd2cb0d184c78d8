package targets

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/remocal/remocal/kube"
	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/test/poll"
)

// The coalescing and resync rules, checked where their timing can be
// controlled: client-go's fake clientset stands in for the API server
// (TestKubeProviderClusterWide and TestKubeProviderNamespaceOnly run the
// same provider against the real cluster).
func TestKubeCoalescesAndIgnoresNoChange(t *testing.T) {
	before := goleak.IgnoreCurrent()
	cs := fake.NewClientset()
	// The fake cannot replay what happened between an informer's list and
	// its watch, so the test changes nothing before every watch is open:
	// the 7 kinds and namespaces.
	watches := make(chan struct{}, 16)
	cs.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := cs.Tracker().Watch(a.GetResource(), a.GetNamespace())
		watches <- struct{}{}
		return true, w, err
	})
	k := NewKube(&kube.Env{Client: cs, Namespace: "default", Context: "fake"}, KubeOptions{
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil)),
		// A quiet period far longer than the burst below takes, even on a
		// loaded machine under the race detector (250 ms was not: the
		// burst was announced in two parts).
		// Resyncs count as changes here: every 3 s, so that a quiet period
		// still ends between them.
		Quiet: time.Second, MaxDelay: 20 * time.Second, Resync: 3 * time.Second,
	})
	closed := false
	defer func() {
		if !closed {
			k.Close()
		}
	}()
	next := func() daemon.TargetsChanged {
		t.Helper()
		select {
		case c := <-k.Changed():
			return c
		case <-time.After(30 * time.Second):
			t.Fatal("no notification")
		}
		return daemon.TargetsChanged{}
	}
	if c := next(); c != (daemon.TargetsChanged{Provider: kube.Provider}) {
		t.Fatalf("first notification %+v, want one for all namespaces", c)
	}
	for range len(kube.Workloads) + 1 {
		select {
		case <-watches:
		case <-time.After(30 * time.Second):
			t.Fatal("the informers did not all watch")
		}
	}
	ctx := context.Background()
	newPod := func(ns, name string) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:1"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// A burst in one namespace: one notification, after which every pod
	// of the burst is listed.
	for i := range 20 {
		newPod("a", fmt.Sprintf("p%02d", i))
	}
	if c := next(); c != (daemon.TargetsChanged{Provider: kube.Provider, Namespace: "a"}) {
		t.Fatalf("notification %+v, want namespace a", c)
	}
	if n := len(summary(k.Targets(), "a")); n != 20 {
		t.Fatalf("%d targets in a after its notification, want 20", n)
	}
	// Nothing more about a is pending: the next notification is b's.
	newPod("b", "first")
	if c := next(); c.Namespace != "b" {
		t.Fatalf("notification %+v, want namespace b", c)
	}

	// A change that leaves the targets as they were (a label), and the
	// informers' resyncs (the fake's objects all have the same empty
	// resource version, so each resync is rebuilt and compared): rebuilt,
	// not announced.
	p, err := cs.CoreV1().Pods("a").Get(ctx, "p00", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Labels = map[string]string{"marked": "yes"}
	if _, err := cs.CoreV1().Pods("a").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := poll.Until(ctx, 30*time.Second, func() error {
		if k.unchanged.Load() < 3 {
			return fmt.Errorf("%d rebuilds found nothing changed", k.unchanged.Load())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	newPod("b", "second")
	if c := next(); c.Namespace != "b" {
		t.Fatalf("notification %+v, want namespace b: a change of nothing was announced", c)
	}

	// A namespace that comes is announced though it holds no targets.
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.Namespace != "c" {
		t.Fatalf("notification %+v, want namespace c", c)
	}
	if !slices.Contains(k.Namespaces(), daemon.Namespace{Name: "c", Provider: kube.Provider}) {
		t.Errorf("namespaces %v lack c", k.Namespaces())
	}

	k.Close()
	closed = true
	goleak.VerifyNone(t, before)
}
