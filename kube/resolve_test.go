package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/remocal/remocal/interpose/connect"
)

// runningPod is a running pod in shop whose containers (app, then
// istio-proxy with sidecar) run with IDs made of its name.
func runningPod(name string, age int, labels map[string]string, sidecar bool) *corev1.Pod {
	p := pod(objMeta("shop", name, age), labels, corev1.PodRunning, sidecar)
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name,
			ContainerID: "containerd://" + name + "-" + c.Name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
	}
	return p
}

func selectorOf(labels map[string]string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: labels}
}

func job(name string, age int, cronjob string) *batchv1.Job {
	m := objMeta("shop", name, age)
	if cronjob != "" {
		m.OwnerReferences = []metav1.OwnerReference{ownedBy("CronJob", "shop", cronjob)}
	}
	return &batchv1.Job{ObjectMeta: m, Spec: batchv1.JobSpec{Selector: selectorOf(map[string]string{"job-name": name})}}
}

// shop is a namespace with one workload of every kind, and a few broken
// ones.
func shop() []runtime.Object {
	api := map[string]string{"app": "api"}
	pending := pod(objMeta("shop", "api-pending", 0), api, corev1.PodPending, false, waiting("ContainerCreating"))
	deleting := runningPod("api-deleting", -10, api, false)
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	crashed := runningPod("crashed", 0, map[string]string{"app": "crashed"}, false)
	crashed.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 2}}
	starting := runningPod("starting", 0, nil, false)
	starting.Status.ContainerStatuses[0].ContainerID = ""
	sidecarsOnly := runningPod("mesh", 0, nil, false)
	sidecarsOnly.Spec.Containers[0].Name = "istio-proxy"
	sidecarsOnly.Status.ContainerStatuses[0].Name = "istio-proxy"
	return []runtime.Object{
		runningPod("api-old", 1, api, true), runningPod("api-new", 20, api, true), pending, deleting,
		runningPod("db-0", 3, map[string]string{"app": "db"}, false),
		runningPod("migrate-x", 4, map[string]string{"job-name": "migrate"}, false),
		runningPod("nightly-1-x", 5, map[string]string{"job-name": "nightly-1"}, false),
		runningPod("nightly-2-x", 60, map[string]string{"job-name": "nightly-2"}, false),
		crashed, starting, sidecarsOnly,
		&appsv1.Deployment{ObjectMeta: objMeta("shop", "api", 0), Spec: appsv1.DeploymentSpec{Selector: selectorOf(api)}},
		&appsv1.Deployment{ObjectMeta: objMeta("shop", "idle", 0), Spec: appsv1.DeploymentSpec{Selector: selectorOf(map[string]string{"app": "idle"})}},
		&appsv1.Deployment{ObjectMeta: objMeta("shop", "broken", 0), Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Sideways"}}}}},
		&appsv1.StatefulSet{ObjectMeta: objMeta("shop", "db", 0), Spec: appsv1.StatefulSetSpec{Selector: selectorOf(map[string]string{"app": "db"})}},
		&appsv1.ReplicaSet{ObjectMeta: objMeta("shop", "api-5d8f", 0), Spec: appsv1.ReplicaSetSpec{Selector: selectorOf(api)}},
		job("migrate", 4, ""), job("nightly-1", 5, "nightly"), job("nightly-2", 50, "nightly"), job("other-1", 90, "other"),
		&batchv1.CronJob{ObjectMeta: objMeta("shop", "nightly", 0)},
		&batchv1.CronJob{ObjectMeta: objMeta("shop", "never", 0)},
		&corev1.Service{ObjectMeta: objMeta("shop", "web", 0), Spec: corev1.ServiceSpec{Selector: api}},
		&corev1.Service{ObjectMeta: objMeta("shop", "external", 0)},
		&appsv1.Deployment{ObjectMeta: objMeta("shop", "crashed", 0), Spec: appsv1.DeploymentSpec{Selector: selectorOf(map[string]string{"app": "crashed"})}},
	}
}

const twoRunning = "%s has 2 running pods; this session uses api-old (the oldest), so only its traffic is mirrored or stolen; the other pods serve as before"

func TestResolve(t *testing.T) {
	env := &Env{Client: fake.NewClientset(shop()...), Namespace: "shop"}
	for _, tc := range []struct {
		ref                string
		pod, container, id string
		note               string
		errHas             string
		notFound           bool
	}{
		{ref: "pod/api-new", pod: "api-new", container: "app", id: "containerd://api-new-app"},
		{ref: "pod/api-new/container/istio-proxy", pod: "api-new", container: "istio-proxy", id: "containerd://api-new-istio-proxy"},
		{ref: "deployment/api", pod: "api-old", container: "app", id: "containerd://api-old-app", note: fmt.Sprintf(twoRunning, "deployment/api")},
		{ref: "deploy/api/container/istio-proxy", pod: "api-old", container: "istio-proxy", id: "containerd://api-old-istio-proxy",
			note: fmt.Sprintf(twoRunning, "deployment/api")},
		{ref: "statefulset/db", pod: "db-0", container: "app", id: "containerd://db-0-app"},
		{ref: "replicaset/api-5d8f", pod: "api-old", container: "app", id: "containerd://api-old-app", note: fmt.Sprintf(twoRunning, "replicaset/api-5d8f")},
		{ref: "job/migrate", pod: "migrate-x", container: "app", id: "containerd://migrate-x-app"},
		// The latest job, not the first, and not another cronjob's.
		{ref: "cronjob/nightly", pod: "nightly-2-x", container: "app", id: "containerd://nightly-2-x-app"},
		{ref: "service/web", pod: "api-old", container: "app", id: "containerd://api-old-app", note: fmt.Sprintf(twoRunning, "service/web")},
		{ref: "selector/app=db", pod: "db-0", container: "app", id: "containerd://db-0-app"},
		{ref: "selector/app=api,tier!=web", pod: "api-old", container: "app", id: "containerd://api-old-app",
			note: fmt.Sprintf(twoRunning, "pods matching app=api,tier!=web")},

		{ref: "pod/api-pending", notFound: true, errHas: "target pod/api-pending is not running: api-pending is Pending (ContainerCreating)"},
		{ref: "pod/api-deleting", notFound: true, errHas: "api-deleting is Running"},
		{ref: "pod/api-new/container/nope", notFound: true, errHas: `pod api-new has no container "nope"; its containers are app, istio-proxy`},
		{ref: "pod/crashed", notFound: true, errHas: "container app of pod crashed is not running (terminated: Error, exit 2)"},
		{ref: "deployment/crashed", notFound: true, errHas: "container app of pod crashed is not running"},
		{ref: "deployment/idle", notFound: true, errHas: "deployment/idle in namespace shop has no pods (selector app=idle); is it scaled to zero?"},
		{ref: "selector/app=nothing", notFound: true, errHas: "pods matching app=nothing in namespace shop has no pods"},
		{ref: "cronjob/never", notFound: true, errHas: "cronjob/never has not run yet"},
		{ref: "service/external", notFound: true, errHas: "service/external has no pod selector"},

		{ref: "pod/starting", errHas: "container app of pod starting has no container ID yet"},
		{ref: "pod/mesh", errHas: "pod mesh has only sidecar containers (istio-proxy)"},
		{ref: "deployment/broken", errHas: "deployment/broken has an invalid pod selector"},
		{ref: "pid/1", errHas: `target "pid/1" is not a Kubernetes workload`},
		{ref: "targetless", errHas: `target "targetless" is not a Kubernetes workload`},
		{ref: "daemonset/x", errHas: "target got"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			r, err := Resolve(context.Background(), env, tc.ref)
			if tc.errHas != "" {
				if err == nil {
					t.Fatalf("Resolve = %s, want an error", r.Describe())
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("error %q, want it to contain %q", err, tc.errHas)
				}
				if got := errors.Is(err, connect.ErrTargetNotFound); got != tc.notFound {
					t.Errorf("errors.Is(%v, ErrTargetNotFound) = %v, want %v", err, got, tc.notFound)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Ref != tc.ref || r.Namespace != "shop" || r.Pod.Name != tc.pod || r.Container != tc.container || r.ContainerID != tc.id || r.Note != tc.note {
				t.Errorf("Resolve = ref %q ns %q pod %q container %q id %q note %q\nwant pod %q container %q id %q note %q",
					r.Ref, r.Namespace, r.Pod.Name, r.Container, r.ContainerID, r.Note, tc.pod, tc.container, tc.id, tc.note)
			}
		})
	}
}

// Every kind of Workloads: a name that does not exist is ErrTargetNotFound
// naming the kind's resource, and an account that may not read it is told
// which permission to ask for (and is not "not found").
func TestResolveMissingAndForbidden(t *testing.T) {
	for _, w := range Workloads {
		ref := string(w.Kind) + "/missing"
		resource := strings.SplitN(w.Resource, ".", 2)[0]
		t.Run(ref, func(t *testing.T) {
			env := &Env{Client: fake.NewClientset(), Namespace: "shop"}
			_, err := Resolve(context.Background(), env, ref)
			want := fmt.Sprintf("%s %q not found in namespace shop", resource, "missing")
			if err == nil || err.Error() != want || !errors.Is(err, connect.ErrTargetNotFound) {
				t.Errorf("Resolve(%s) = %v, want ErrTargetNotFound %q", ref, err, want)
			}

			cs := fake.NewClientset()
			cs.PrependReactor("get", resource, func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: resource}, "missing", errors.New("RBAC"))
			})
			_, err = Resolve(context.Background(), &Env{Client: cs, Namespace: "shop"}, ref)
			if err == nil || errors.Is(err, connect.ErrTargetNotFound) ||
				!strings.Contains(err.Error(), fmt.Sprintf("your Kubernetes account may not get %s in namespace shop", w.Resource)) {
				t.Errorf("Resolve(%s) forbidden = %v", ref, err)
			}
		})
	}
	// Listing the pods of a workload needs its own permission.
	cs := fake.NewClientset(shop()...)
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("RBAC"))
	})
	_, err := Resolve(context.Background(), &Env{Client: cs, Namespace: "shop"}, "deployment/api")
	if err == nil || !strings.Contains(err.Error(), "may not list pods in namespace shop") {
		t.Errorf("Resolve without pods/list = %v", err)
	}
}

func TestContainerAndPodReason(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   corev1.ContainerStatus
		want string
	}{
		{"running", running(true), ""},
		{"waiting", waiting("ContainerCreating"), " (ContainerCreating)"},
		{"waiting with message", corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "ImagePullBackOff", Message: `Back-off pulling image "x"`}}}, ` (ImagePullBackOff: Back-off pulling image "x")`},
		{"terminated", corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			Reason: "OOMKilled", ExitCode: 137}}}, " (terminated: OOMKilled, exit 137)"},
		{"no state", corev1.ContainerStatus{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := containerReason(tc.st); got != tc.want {
				t.Errorf("containerReason = %q, want %q", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		p    *corev1.Pod
		want string
	}{
		{"first container with a reason", pod(objMeta("shop", "p", 0), nil, corev1.PodPending, true, running(false), waiting("CrashLoopBackOff")),
			" (CrashLoopBackOff)"},
		{"pod's reason", &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted"}}, " (Evicted)"},
		{"container wins over pod", &corev1.Pod{Status: corev1.PodStatus{Reason: "Evicted",
			ContainerStatuses: []corev1.ContainerStatus{waiting("Unknown")}}}, " (Unknown)"},
		{"nothing", &corev1.Pod{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := podReason(tc.p); got != tc.want {
				t.Errorf("podReason = %q, want %q", got, tc.want)
			}
		})
	}
}

// pick takes the oldest running pod, by name when equally old, and never
// one being deleted.
func TestPickOrder(t *testing.T) {
	app := map[string]string{"app": "x"}
	deleting := runningPod("a-deleting", 0, app, false)
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	for _, tc := range []struct {
		name string
		pods []*corev1.Pod
		want string
		note bool
	}{
		{"one", []*corev1.Pod{runningPod("x-1", 5, app, false)}, "x-1", false},
		{"oldest", []*corev1.Pod{runningPod("x-1", 5, app, false), runningPod("x-2", 2, app, false), runningPod("x-3", 9, app, false)}, "x-2", true},
		{"same age: by name", []*corev1.Pod{runningPod("x-b", 5, app, false), runningPod("x-a", 5, app, false)}, "x-a", true},
		{"deleting skipped", []*corev1.Pod{deleting, runningPod("x-1", 5, app, false)}, "x-1", false},
		{"pending skipped", []*corev1.Pod{pod(objMeta("shop", "a-pending", 0), app, corev1.PodPending, false), runningPod("x-1", 5, app, false)}, "x-1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pods []corev1.Pod
			for _, p := range tc.pods {
				pods = append(pods, *p)
			}
			r, err := pick("deployment/x", "shop", pods, "", "deployment/x")
			if err != nil {
				t.Fatal(err)
			}
			if r.Pod.Name != tc.want || (r.Note != "") != tc.note {
				t.Errorf("pick = %s (note %q), want %s (note %v)", r.Pod.Name, r.Note, tc.want, tc.note)
			}
		})
	}
}

func TestAppContainers(t *testing.T) {
	for _, tc := range []struct {
		containers []string
		want       []string
	}{
		{[]string{"app"}, []string{"app"}},
		{[]string{"istio-proxy", "app", "worker"}, []string{"app", "worker"}},
		{[]string{"linkerd-proxy", "vault-agent"}, nil},
		{nil, nil},
	} {
		var spec corev1.PodSpec
		for _, n := range tc.containers {
			spec.Containers = append(spec.Containers, corev1.Container{Name: n})
		}
		spec.InitContainers = []corev1.Container{{Name: "init-db"}}
		if got := AppContainers(&spec); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("AppContainers(%v) = %v, want %v", tc.containers, got, tc.want)
		}
	}
}

func TestAPIError(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	podSecurity := `pods "x" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostPID=true)`
	for _, tc := range []struct {
		name     string
		err      error
		want     string
		notFound bool
		wraps    bool
	}{
		{"not found", apierrors.NewNotFound(gr, "api"), `deployments "api" not found in namespace shop`, true, false},
		{"forbidden", apierrors.NewForbidden(gr, "api", errors.New("no RBAC")),
			`your Kubernetes account may not get deployments.apps in namespace shop (deployments.apps "api" is forbidden: no RBAC); ask an administrator for that permission, e.g. the ClusterRole in docs/kubernetes.md`,
			false, false},
		{"pod security", apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "x", errors.New(podSecurity)),
			"namespace shop refuses the agent: ", false, false},
		{"other", apierrors.NewTimeoutError("slow", 1), "get deployments.apps shop/api: ", false, true},
		{"not an API error", errors.New("connection refused"), "get deployments.apps shop/api: connection refused", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := apiError(tc.err, "get", "deployments.apps", "shop", "api")
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("apiError = %q, want it to start with %q", err, tc.want)
			}
			if got := errors.Is(err, connect.ErrTargetNotFound); got != tc.notFound {
				t.Errorf("ErrTargetNotFound %v, want %v", got, tc.notFound)
			}
			if got := errors.Is(err, tc.err); got != tc.wraps {
				t.Errorf("wraps the API error: %v, want %v", got, tc.wraps)
			}
		})
	}
}
