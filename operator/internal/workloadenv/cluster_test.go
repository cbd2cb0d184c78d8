package workloadenv

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/poll"
)

// Against the harness cluster's real controllers and kubelet: a Set rolls
// the workload out, WaitRolledOut returns only when no pod of the old
// template is left (not even terminating), the pods run the new values,
// and Restore brings the original template back.

func clusterClient(t *testing.T) (kubernetes.Interface, string) {
	t.Helper()
	c := cluster.Require(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, c.Namespace(t)
}

func clusterCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// podSpec runs the toolbox with args ($(VAR) expanded by the kubelet).
// Old pods take a second to terminate (a preStop sleep), so a wait that
// only counted ready replicas would return while they still exist.
func podSpec(labels map[string]string, args []string, env ...corev1.EnvVar) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr(int64(5)),
			Containers: []corev1.Container{
				{Name: "sidecar", Image: cluster.ToolboxImage, ImagePullPolicy: corev1.PullNever, Args: []string{"sleep"},
					Env: []corev1.EnvVar{{Name: "STREAM", Value: "sidecar's"}}},
				{Name: "worker", Image: cluster.ToolboxImage, ImagePullPolicy: corev1.PullNever, Args: args, Env: env,
					Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}}},
			},
		},
	}
}

// podsOf lists the pods with the workload's label.
func podsOf(ctx context.Context, cs kubernetes.Interface, ns, app string) ([]corev1.Pod, error) {
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

func workerEnv(p *corev1.Pod, name string) string {
	for _, c := range p.Spec.Containers {
		if c.Name == "worker" {
			for _, e := range c.Env {
				if e.Name == name {
					return e.Value
				}
			}
		}
	}
	return "<unset>"
}

// checkRolledOut asserts, right after WaitRolledOut returned, that every
// pod that exists carries hash (by label) and the worker's STREAM value,
// that there are n of them, ready and not terminating.
func checkRolledOut(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, app, label, hash, stream string, n int) {
	t.Helper()
	pods, err := podsOf(ctx, cs, ns, app)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != n {
		t.Errorf("%d pods after the rollout, want %d", len(pods), n)
	}
	for i := range pods {
		p := &pods[i]
		if p.Labels[label] != hash || p.DeletionTimestamp != nil || !ready(p) {
			t.Errorf("after WaitRolledOut, pod %s has %s=%s (want %s), terminating %v, ready %v",
				p.Name, label, p.Labels[label], hash, p.DeletionTimestamp != nil, ready(p))
		}
		if got := workerEnv(p, "STREAM"); got != stream {
			t.Errorf("pod %s runs STREAM=%q, want %q", p.Name, got, stream)
		}
	}
}

// currentHash is the label value of the workload's current template.
func currentHash(t *testing.T, ctx context.Context, cs kubernetes.Interface, ref Ref) (label, hash string) {
	t.Helper()
	if ref.Kind == StatefulSet {
		s, err := cs.AppsV1().StatefulSets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return appsv1.ControllerRevisionHashLabelKey, s.Status.UpdateRevision
	}
	d, err := cs.AppsV1().Deployments(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rss, err := cs.AppsV1().ReplicaSets(ref.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + ref.Name})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range rss.Items {
		if rs.Annotations["deployment.kubernetes.io/revision"] == d.Annotations["deployment.kubernetes.io/revision"] {
			return appsv1.DefaultDeploymentUniqueLabelKey, rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		}
	}
	t.Fatalf("no current replicaset of %s", ref)
	return "", ""
}

func createWorkload(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, kind, name string, replicas int32, args []string, env ...corev1.EnvVar) Ref {
	t.Helper()
	labels := map[string]string{"app": name, "remocal-test": "true"}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	var err error
	if kind == StatefulSet {
		_, err = cs.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.StatefulSetSpec{Replicas: &replicas, Selector: sel, ServiceName: name,
				PodManagementPolicy: appsv1.ParallelPodManagement, Template: podSpec(labels, args, env...)},
		}, metav1.CreateOptions{})
	} else {
		_, err = cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       appsv1.DeploymentSpec{Replicas: &replicas, Selector: sel, Template: podSpec(labels, args, env...)},
		}, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	return Ref{Namespace: ns, Kind: kind, Name: name, Container: "worker"}
}

func TestClusterSetWaitRestore(t *testing.T) {
	cs, ns := clusterClient(t)
	for _, kind := range []string{Deployment, StatefulSet} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := clusterCtx(t, 90*time.Second)
			ref := createWorkload(t, ctx, cs, ns, kind, "orders-"+kind, 2, []string{"sleep"},
				corev1.EnvVar{Name: "STREAM", Value: "orders"}, corev1.EnvVar{Name: "GROUP", Value: "workers"})
			if err := WaitRolledOut(ctx, cs, ref); err != nil {
				t.Fatalf("the first rollout: %v", err)
			}
			label, original := currentHash(t, ctx, cs, ref)
			checkRolledOut(t, ctx, cs, ns, ref.Name, label, original, "orders", 2)
			got, err := Read(ctx, cs, ref, []string{"STREAM", "GROUP"})
			if err != nil || got["STREAM"] != "orders" || got["GROUP"] != "workers" {
				t.Fatalf("Read: %v %v", got, err)
			}

			start := time.Now()
			if err := Set(ctx, cs, ref, "orders-worker/orders", map[string]string{"STREAM": "{orders}.remocal.deployed"}); err != nil {
				t.Fatal(err)
			}
			if err := WaitRolledOut(ctx, cs, ref); err != nil {
				t.Fatalf("the rollout of Set: %v", err)
			}
			t.Logf("Set rolled out in %s", time.Since(start).Round(100*time.Millisecond))
			_, split := currentHash(t, ctx, cs, ref)
			if split == original {
				t.Fatalf("Set did not change the template's hash (%s)", split)
			}
			checkRolledOut(t, ctx, cs, ns, ref.Name, label, split, "{orders}.remocal.deployed", 2)
			rec, err := Recorded(ctx, cs, ref)
			if err != nil || rec["orders-worker/orders"]["STREAM"] != "orders" {
				t.Errorf("Recorded: %v %v", rec, err)
			}

			start = time.Now()
			if err := Restore(ctx, cs, ref, "orders-worker/orders"); err != nil {
				t.Fatal(err)
			}
			if err := WaitRolledOut(ctx, cs, ref); err != nil {
				t.Fatalf("the rollout of Restore: %v", err)
			}
			t.Logf("Restore rolled out in %s", time.Since(start).Round(100*time.Millisecond))
			_, restored := currentHash(t, ctx, cs, ref)
			checkRolledOut(t, ctx, cs, ns, ref.Name, label, restored, "orders", 2)
			w, err := get(ctx, cs, ref)
			if err != nil {
				t.Fatal(err)
			}
			if a, ok := w.meta().Annotations[Annotation]; ok {
				t.Errorf("after Restore the annotation is still there: %s", a)
			}
			env := w.template().Spec.Containers[1].Env
			if len(env) != 2 || env[0] != (corev1.EnvVar{Name: "STREAM", Value: "orders"}) || env[1] != (corev1.EnvVar{Name: "GROUP", Value: "workers"}) {
				t.Errorf("after Restore the worker's env is %v", env)
			}
			if v := w.template().Spec.Containers[0].Env[0].Value; v != "sidecar's" {
				t.Errorf("the sidecar's STREAM is %q", v)
			}
		})
	}
}

// A Set whose pods cannot run: WaitRolledOut gives up when its context
// ends, naming the crashing pod and the old one still running; Restore
// brings the workload back to where it completes.
func TestClusterWaitNamesCrashingPod(t *testing.T) {
	cs, ns := clusterClient(t)
	ctx := clusterCtx(t, 90*time.Second)
	// The kubelet expands $(MODE): "sleep" runs, anything else exits 1.
	ref := createWorkload(t, ctx, cs, ns, Deployment, "crasher", 1, []string{"$(MODE)"}, corev1.EnvVar{Name: "MODE", Value: "sleep"})
	if err := WaitRolledOut(ctx, cs, ref); err != nil {
		t.Fatalf("the first rollout: %v", err)
	}
	oldPods, err := podsOf(ctx, cs, ns, "crasher")
	if err != nil || len(oldPods) != 1 {
		t.Fatalf("pods before Set: %v %v", oldPods, err)
	}
	if err := Set(ctx, cs, ref, "k", map[string]string{"MODE": "crash"}); err != nil {
		t.Fatal(err)
	}
	// Wait until the new pod has crashed once, so there is a reason to
	// report; then give WaitRolledOut a short while.
	var crashing string
	if err := poll.Until(ctx, 45*time.Second, func() error {
		pods, err := podsOf(ctx, cs, ns, "crasher")
		if err != nil {
			return err
		}
		for _, p := range pods {
			for _, c := range p.Status.ContainerStatuses {
				if c.Name == "worker" && (c.RestartCount > 0 || c.State.Terminated != nil) {
					crashing = p.Name
					return nil
				}
			}
		}
		return errors.New("no pod has crashed yet")
	}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = WaitRolledOut(short, cs, ref)
	cancel()
	var re *RolloutError
	if !errors.As(err, &re) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitRolledOut: %v, want a RolloutError", err)
	}
	msg := err.Error()
	for _, w := range []string{crashing, "container worker", "exit code 1", oldPods[0].Name + " (old template"} {
		if !strings.Contains(msg, w) {
			t.Errorf("the error does not say %q: %s", w, msg)
		}
	}
	t.Logf("the error: %s", msg)

	if err := Restore(ctx, cs, ref, "k"); err != nil {
		t.Fatal(err)
	}
	if err := WaitRolledOut(ctx, cs, ref); err != nil {
		t.Fatalf("after Restore: %v", err)
	}
	label, hash := currentHash(t, ctx, cs, ref)
	pods, err := podsOf(ctx, cs, ns, "crasher")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if p.Labels[label] != hash || workerEnv(&p, "MODE") != "sleep" {
			t.Errorf("after Restore, pod %s: %s=%s (want %s), MODE=%s", p.Name, label, p.Labels[label], hash, workerEnv(&p, "MODE"))
		}
	}
	if len(pods) != 1 {
		t.Errorf("%d pods after Restore, want 1", len(pods))
	}
}
