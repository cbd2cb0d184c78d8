package kube

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/remocal/remocal/protocol/daemon"
)

var t0 = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)

func objMeta(ns, name string, age int, owner ...metav1.OwnerReference) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "/" + name),
		CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(age) * time.Second)), OwnerReferences: owner}
}

func ownedBy(kind, ns, name string) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{Kind: kind, Name: name, UID: types.UID(ns + "/" + name), Controller: &yes}
}

// spec has an application container "app" and, with sidecar, istio-proxy.
func spec(sidecar bool) corev1.PodSpec {
	s := corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:1"}}}
	if sidecar {
		s.Containers = append(s.Containers, corev1.Container{Name: "istio-proxy", Image: "istio/proxyv2:1.24"})
	}
	return s
}

func running(ready bool) corev1.ContainerStatus {
	return corev1.ContainerStatus{Ready: ready, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

func waiting(reason string) corev1.ContainerStatus {
	return corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
}

// pod builds a pod whose containers have the given statuses, in order.
func pod(m metav1.ObjectMeta, labels map[string]string, phase corev1.PodPhase, sidecar bool, st ...corev1.ContainerStatus) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: m, Spec: spec(sidecar), Status: corev1.PodStatus{Phase: phase}}
	p.Labels = labels
	for i, s := range st {
		s.Name = p.Spec.Containers[i].Name
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, s)
	}
	return p
}

func template(sidecar bool) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{Spec: spec(sidecar)}
}

func TestBuildTargets(t *testing.T) {
	deleting := objMeta("ns", "old", 0)
	deleting.DeletionTimestamp = ptr(metav1.NewTime(t0))
	app := []string{"app"}
	img := "example/app:1"
	withSidecar := "example/app:1, istio/proxyv2:1.24"
	tg := func(kind, name string, ready bool, status string, containers []string, desc string) daemon.Target {
		return daemon.Target{Ref: kind + "/" + name, Kind: kind, Name: name, Namespace: "ns", Provider: Provider,
			Ready: ready, Status: status, Containers: containers, Description: desc}
	}
	for _, tc := range []struct {
		name string
		in   Objects
		want []daemon.Target
	}{
		{name: "nothing", want: []daemon.Target{}},
		{name: "pods", in: Objects{Pods: []*corev1.Pod{
			pod(objMeta("ns", "ok", 0), nil, corev1.PodRunning, true, running(true), running(true)),
			pod(objMeta("ns", "sidecar-unready", 0), nil, corev1.PodRunning, true, running(true), running(false)),
			pod(objMeta("ns", "app-unready", 0), nil, corev1.PodRunning, false, running(false)),
			pod(objMeta("ns", "crash", 0), nil, corev1.PodRunning, false, waiting("CrashLoopBackOff")),
			pod(objMeta("ns", "creating", 0), nil, corev1.PodPending, false, waiting("ContainerCreating")),
			pod(objMeta("ns", "pending", 0), nil, corev1.PodPending, false),
			pod(objMeta("ns", "done", 0), nil, corev1.PodSucceeded, false),
			pod(deleting, nil, corev1.PodRunning, false, running(true)),
		}}, want: []daemon.Target{
			tg("pod", "app-unready", false, "Running, 0/1 ready", app, img),
			tg("pod", "crash", false, "CrashLoopBackOff", app, img),
			tg("pod", "creating", false, "ContainerCreating", app, img),
			tg("pod", "done", false, "complete", app, img),
			tg("pod", "ok", true, "Running", app, withSidecar),
			tg("pod", "old", false, "Terminating", app, img),
			tg("pod", "pending", false, "Pending", app, img),
			// A sidecar that is not ready does not keep a session from the app.
			tg("pod", "sidecar-unready", true, "Running, 1/2 ready", app, withSidecar),
		}},
		{name: "remocal's own agents are not targets", in: Objects{
			Pods: []*corev1.Pod{
				pod(objMeta("ns", "ok", 0), nil, corev1.PodRunning, false, running(true)),
				pod(objMeta("ns", "remocal-agent-2ada-x", 0), map[string]string{"app.kubernetes.io/name": "remocal-agent"}, corev1.PodRunning, false, running(true)),
			},
			Jobs: []*batchv1.Job{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "remocal-agent-2ada",
				Labels: map[string]string{"app.kubernetes.io/name": "remocal-agent"}}, Spec: batchv1.JobSpec{Template: template(false)}}},
		}, want: []daemon.Target{tg("pod", "ok", true, "Running", app, img)}},
		{name: "workloads", in: Objects{
			Deployments: []*appsv1.Deployment{
				{ObjectMeta: objMeta("ns", "api", 0), Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(3)), Template: template(true)},
					Status: appsv1.DeploymentStatus{ReadyReplicas: 2}},
				{ObjectMeta: objMeta("ns", "down", 0), Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(2)), Template: template(false)}},
				{ObjectMeta: objMeta("ns", "zero", 0), Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(0)), Template: template(false)}},
			},
			StatefulSets: []*appsv1.StatefulSet{
				{ObjectMeta: objMeta("ns", "db", 0), Spec: appsv1.StatefulSetSpec{Template: template(false)}, Status: appsv1.StatefulSetStatus{ReadyReplicas: 1}},
			},
			ReplicaSets: []*appsv1.ReplicaSet{
				{ObjectMeta: objMeta("ns", "api-new", 0, ownedBy("Deployment", "ns", "api")), Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(3)), Template: template(true)},
					Status: appsv1.ReplicaSetStatus{ReadyReplicas: 2}},
				// An old revision of a Deployment is not listed ...
				{ObjectMeta: objMeta("ns", "api-old", 0, ownedBy("Deployment", "ns", "api")), Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(0)), Template: template(true)}},
				// ... a bare ReplicaSet scaled to zero is.
				{ObjectMeta: objMeta("ns", "bare", 0), Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(0)), Template: template(false)}},
			},
		}, want: []daemon.Target{
			tg("deployment", "api", true, "2/3 ready", app, withSidecar),
			tg("deployment", "down", false, "0/2 ready", app, img),
			tg("deployment", "zero", false, "scaled to 0", app, img),
			tg("replicaset", "api-new", true, "2/3 ready", app, withSidecar),
			tg("replicaset", "bare", false, "scaled to 0", app, img),
			tg("statefulset", "db", true, "1/1 ready", app, img),
		}},
		{name: "jobs and cronjobs", in: Objects{
			Jobs: []*batchv1.Job{
				{ObjectMeta: objMeta("ns", "migrate", 0), Spec: batchv1.JobSpec{Template: template(false)}},
				{ObjectMeta: objMeta("ns", "starting", 0), Spec: batchv1.JobSpec{Template: template(false)}},
				{ObjectMeta: objMeta("ns", "finished", 0), Spec: batchv1.JobSpec{Template: template(false)},
					Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}}},
				{ObjectMeta: objMeta("ns", "broken", 0), Spec: batchv1.JobSpec{Template: template(false)},
					Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded"}}}},
				{ObjectMeta: objMeta("ns", "held", 0), Spec: batchv1.JobSpec{Suspend: ptr(true), Template: template(false)}},
				// The cronjob's jobs: the newest decides.
				{ObjectMeta: objMeta("ns", "nightly-1", 0, ownedBy("CronJob", "ns", "nightly")), Spec: batchv1.JobSpec{Template: template(false)}},
				{ObjectMeta: objMeta("ns", "nightly-2", 60, ownedBy("CronJob", "ns", "nightly")), Spec: batchv1.JobSpec{Template: template(false)}},
			},
			CronJobs: []*batchv1.CronJob{
				{ObjectMeta: objMeta("ns", "nightly", 0), Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template(false)}}},
					Status: batchv1.CronJobStatus{Active: []corev1.ObjectReference{{Name: "nightly-2"}}}},
				{ObjectMeta: objMeta("ns", "paused", 0), Spec: batchv1.CronJobSpec{Schedule: "*/5 * * * *", Suspend: ptr(true), JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template(false)}}}},
				{ObjectMeta: objMeta("ns", "hourly", 0), Spec: batchv1.CronJobSpec{Schedule: "@hourly", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template(false)}}},
					Status: batchv1.CronJobStatus{LastScheduleTime: ptr(metav1.NewTime(t0))}},
				{ObjectMeta: objMeta("ns", "new", 0), Spec: batchv1.CronJobSpec{Schedule: "@daily", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template(false)}}}},
			},
			Pods: []*corev1.Pod{
				pod(objMeta("ns", "migrate-x", 0, ownedBy("Job", "ns", "migrate")), nil, corev1.PodRunning, false, running(true)),
				pod(objMeta("ns", "starting-x", 0, ownedBy("Job", "ns", "starting")), nil, corev1.PodPending, false, waiting("ContainerCreating")),
				pod(objMeta("ns", "nightly-1-x", 0, ownedBy("Job", "ns", "nightly-1")), nil, corev1.PodRunning, false, running(true)),
				pod(objMeta("ns", "nightly-2-x", 0, ownedBy("Job", "ns", "nightly-2")), nil, corev1.PodRunning, false, running(true)),
			},
		}, want: []daemon.Target{
			tg("cronjob", "hourly", false, "last run 2026-11-25 09:30Z (@hourly)", app, img),
			tg("cronjob", "new", false, "never run (@daily)", app, img),
			tg("cronjob", "nightly", true, "running nightly-2 (0 3 * * *)", app, img),
			tg("cronjob", "paused", false, "suspended (*/5 * * * *)", app, img),
			tg("job", "broken", false, "failed: BackoffLimitExceeded", app, img),
			tg("job", "finished", false, "complete", app, img),
			tg("job", "held", false, "suspended", app, img),
			tg("job", "migrate", true, "1/1 ready", app, img),
			tg("job", "nightly-1", true, "1/1 ready", app, img),
			tg("job", "nightly-2", true, "1/1 ready", app, img),
			tg("job", "starting", false, "0/1 ready", app, img),
			tg("pod", "migrate-x", true, "Running", app, img),
			tg("pod", "nightly-1-x", true, "Running", app, img),
			tg("pod", "nightly-2-x", true, "Running", app, img),
			tg("pod", "starting-x", false, "ContainerCreating", app, img),
		}},
		{name: "services", in: Objects{
			Services: []*corev1.Service{
				{ObjectMeta: objMeta("ns", "web", 0), Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
					Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}},
				{ObjectMeta: objMeta("ns", "cold", 0), Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "cold"}}},
				{ObjectMeta: objMeta("ns", "empty", 0), Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "none"}}},
				{ObjectMeta: objMeta("ns", "external", 0), Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432, Protocol: corev1.ProtocolTCP}}}},
				// The same labels in another namespace are not its pods.
				{ObjectMeta: objMeta("other", "web", 0), Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}},
			},
			Pods: []*corev1.Pod{
				pod(objMeta("ns", "web-b", 10), map[string]string{"app": "web"}, corev1.PodRunning, true, running(true), running(true)),
				pod(objMeta("ns", "web-a", 20), map[string]string{"app": "web"}, corev1.PodRunning, false, running(true)),
				pod(objMeta("ns", "web-c", 0), map[string]string{"app": "web"}, corev1.PodPending, false),
				pod(objMeta("ns", "cold-a", 0), map[string]string{"app": "cold"}, corev1.PodRunning, false, waiting("CrashLoopBackOff")),
			},
		}, want: []daemon.Target{
			tg("pod", "cold-a", false, "CrashLoopBackOff", app, img),
			tg("pod", "web-a", true, "Running", app, img),
			tg("pod", "web-b", true, "Running", app, withSidecar),
			tg("pod", "web-c", false, "Pending", app, img),
			tg("service", "cold", false, "0/1 pods ready", app, "selects app=cold"),
			tg("service", "empty", false, "no pods", nil, "selects app=none"),
			tg("service", "external", false, "no selector", nil, "ports 5432/TCP"),
			// The oldest ready pod (web-b) is what a session uses.
			tg("service", "web", true, "2/3 pods ready", app, "selects app=web; ports 80→8080/TCP"),
			{Ref: "service/web", Kind: "service", Name: "web", Namespace: "other", Provider: Provider, Status: "no pods", Description: "selects app=web"},
		}},
		{name: "only sidecars", in: Objects{Pods: []*corev1.Pod{{
			ObjectMeta: objMeta("ns", "mesh", 0),
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "envoy", Image: "envoy:1"}}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "envoy", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
		}}}, want: []daemon.Target{
			// Running, but a session needs /container/envoy named explicitly.
			tg("pod", "mesh", false, "Running", nil, "envoy:1"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, BuildTargets(tc.in)); diff != "" {
				t.Errorf("targets (-want +got):\n%s", diff)
			}
		})
	}
}
