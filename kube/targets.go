package kube

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/daemon"
)

// Provider names Kubernetes as the provider of targets in the daemon's
// protocol.
const Provider = "kubernetes"

// Objects are the Kubernetes objects targets are built from, of one
// namespace or of several. Pointers, because that is what listers return.
type Objects struct {
	Pods         []*corev1.Pod
	Deployments  []*appsv1.Deployment
	StatefulSets []*appsv1.StatefulSet
	ReplicaSets  []*appsv1.ReplicaSet
	Jobs         []*batchv1.Job
	CronJobs     []*batchv1.CronJob
	Services     []*corev1.Service
}

// index finds the pods and jobs that decide another object's readiness:
// by owner, or by label in the same namespace.
type index struct {
	podsByOwner map[types.UID][]*corev1.Pod
	podsByNS    map[string][]*corev1.Pod
	jobsByOwner map[types.UID][]*batchv1.Job
}

func newIndex(o *Objects) *index {
	ix := &index{podsByOwner: map[types.UID][]*corev1.Pod{}, podsByNS: map[string][]*corev1.Pod{},
		jobsByOwner: map[types.UID][]*batchv1.Job{}}
	for _, p := range o.Pods {
		ix.podsByNS[p.Namespace] = append(ix.podsByNS[p.Namespace], p)
		if c := metav1.GetControllerOf(p); c != nil {
			ix.podsByOwner[c.UID] = append(ix.podsByOwner[c.UID], p)
		}
	}
	for _, j := range o.Jobs {
		if c := metav1.GetControllerOf(j); c != nil {
			ix.jobsByOwner[c.UID] = append(ix.jobsByOwner[c.UID], j)
		}
	}
	return ix
}

// BuildTargets turns listed objects into targets, sorted by namespace then
// ref. It only reads its input, so the daemon can hand it lister results,
// which must not be modified.
func BuildTargets(o Objects) []daemon.Target {
	ix := newIndex(&o)
	out := []daemon.Target{}
	for _, w := range Workloads {
		out = append(out, w.build(&o, ix)...)
	}
	slices.SortFunc(out, func(a, b daemon.Target) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Ref, b.Ref))
	})
	return out
}

func buildPods(o *Objects, _ *index) []daemon.Target {
	var out []daemon.Target
	for _, p := range o.Pods {
		if isAgent(&p.ObjectMeta) {
			continue
		}
		t := newTarget(config.TargetPod, &p.ObjectMeta, &p.Spec)
		t.Status, t.Ready = podStatus(p)
		out = append(out, t)
	}
	return out
}

// replicated is what replicas reads of a workload that keeps a number of
// pods running: its metadata, pod template and wanted and ready counts.
type replicated struct {
	meta  *metav1.ObjectMeta
	spec  *corev1.PodSpec
	want  *int32
	ready int32
}

// replicatedTargets builds the targets of a kind judged by its ready
// replicas; parts reads an object.
func replicatedTargets[T any](kind config.TargetKind, items []*T, parts func(*T) replicated) []daemon.Target {
	var out []daemon.Target
	for _, it := range items {
		r := parts(it)
		t := newTarget(kind, r.meta, r.spec)
		t.Status, t.Ready = replicas(r.want, r.ready)
		out = append(out, t)
	}
	return out
}

func buildDeployments(o *Objects, _ *index) []daemon.Target {
	return replicatedTargets(config.TargetDeployment, o.Deployments, func(d *appsv1.Deployment) replicated {
		return replicated{&d.ObjectMeta, &d.Spec.Template.Spec, d.Spec.Replicas, d.Status.ReadyReplicas}
	})
}

func buildStatefulSets(o *Objects, _ *index) []daemon.Target {
	return replicatedTargets(config.TargetStatefulSet, o.StatefulSets, func(s *appsv1.StatefulSet) replicated {
		return replicated{&s.ObjectMeta, &s.Spec.Template.Spec, s.Spec.Replicas, s.Status.ReadyReplicas}
	})
}

func buildReplicaSets(o *Objects, _ *index) []daemon.Target {
	// A Deployment keeps its old revisions as ReplicaSets scaled to zero:
	// they are history, not targets.
	live := slices.DeleteFunc(slices.Clone(o.ReplicaSets), func(r *appsv1.ReplicaSet) bool {
		c := metav1.GetControllerOf(r)
		return c != nil && c.Kind == "Deployment" && r.Spec.Replicas != nil && *r.Spec.Replicas == 0
	})
	return replicatedTargets(config.TargetReplicaSet, live, func(r *appsv1.ReplicaSet) replicated {
		return replicated{&r.ObjectMeta, &r.Spec.Template.Spec, r.Spec.Replicas, r.Status.ReadyReplicas}
	})
}

func buildJobs(o *Objects, ix *index) []daemon.Target {
	var out []daemon.Target
	for _, j := range o.Jobs {
		if isAgent(&j.ObjectMeta) {
			continue
		}
		t := newTarget(config.TargetJob, &j.ObjectMeta, &j.Spec.Template.Spec)
		t.Status, t.Ready = jobStatus(j, ix.podsByOwner[j.UID])
		out = append(out, t)
	}
	return out
}

func buildCronJobs(o *Objects, ix *index) []daemon.Target {
	var out []daemon.Target
	for _, c := range o.CronJobs {
		t := newTarget(config.TargetCronJob, &c.ObjectMeta, &c.Spec.JobTemplate.Spec.Template.Spec)
		t.Status, t.Ready = cronJobStatus(c, ix.jobsByOwner[c.UID], ix.podsByOwner)
		out = append(out, t)
	}
	return out
}

func buildServices(o *Objects, ix *index) []daemon.Target {
	var out []daemon.Target
	for _, s := range o.Services {
		out = append(out, serviceTarget(s, ix.podsByNS[s.Namespace]))
	}
	return out
}

// isAgent tells remocal's own agents (their Jobs and pods) from the
// workloads a session can target.
func isAgent(m *metav1.ObjectMeta) bool {
	return m.Labels[LabelApp] == AgentAppName
}

func newTarget(kind config.TargetKind, m *metav1.ObjectMeta, spec *corev1.PodSpec) daemon.Target {
	t := daemon.Target{Ref: string(kind) + "/" + m.Name, Kind: string(kind), Name: m.Name, Namespace: m.Namespace, Provider: Provider}
	if spec != nil {
		t.Containers = AppContainers(spec)
		t.Description = images(spec)
	}
	return t
}

// images describes a pod by what it runs, sidecars included.
func images(spec *corev1.PodSpec) string {
	var out []string
	for _, c := range spec.Containers {
		if !slices.Contains(out, c.Image) {
			out = append(out, c.Image)
		}
	}
	return strings.Join(out, ", ")
}

// replicas reads a workload's readiness: ready when one pod is ready, since
// a session runs beside one pod.
func replicas(want *int32, ready int32) (string, bool) {
	n := int32(1) // the API's default
	if want != nil {
		n = *want
	}
	if n == 0 && ready == 0 {
		return "scaled to 0", false
	}
	return fmt.Sprintf("%d/%d ready", ready, n), ready > 0
}

// podStatus says what kubectl's STATUS column would, and whether a session
// can start: the pod runs, is not being deleted, and its application
// containers are running and ready.
func podStatus(p *corev1.Pod) (string, bool) {
	if p.DeletionTimestamp != nil {
		return "Terminating", false
	}
	switch p.Status.Phase {
	case corev1.PodSucceeded:
		return "complete", false
	case corev1.PodFailed:
		return cmp.Or(p.Status.Reason, "Failed"), false
	case corev1.PodPending:
		for _, cs := range p.Status.InitContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "PodInitializing" {
				return "Init:" + w.Reason, false
			}
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason != "" {
				return w.Reason, false
			}
		}
		return cmp.Or(p.Status.Reason, "Pending"), false
	case corev1.PodRunning:
	default:
		return cmp.Or(string(p.Status.Phase), "Unknown"), false
	}
	total, readyN := len(p.Spec.Containers), 0
	appReady := true
	problem := ""
	for _, c := range p.Spec.Containers {
		cs := containerStatus(p, c.Name)
		ok := cs != nil && cs.Ready && cs.State.Running != nil
		if ok {
			readyN++
		}
		if !slices.Contains(KnownSidecars, c.Name) && !ok {
			appReady = false
		}
		if cs != nil && problem == "" {
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				problem = cs.State.Waiting.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
				problem = cs.State.Terminated.Reason
			}
		}
	}
	if len(AppContainers(&p.Spec)) == 0 {
		appReady = false // only sidecars: nothing to run beside by default
	}
	switch {
	case problem != "":
		return problem, appReady
	case readyN == total:
		return "Running", appReady
	}
	return fmt.Sprintf("Running, %d/%d ready", readyN, total), appReady
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// readyPods counts the pods a session could start beside.
func readyPods(pods []*corev1.Pod) int {
	n := 0
	for _, p := range pods {
		if _, ok := podStatus(p); ok {
			n++
		}
	}
	return n
}

// jobStatus judges a job by its pods, which the job's own counters report
// only after a delay.
func jobStatus(j *batchv1.Job, pods []*corev1.Pod) (string, bool) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete, batchv1.JobSuccessCriteriaMet:
			return "complete", false
		case batchv1.JobFailed, batchv1.JobFailureTarget:
			return "failed: " + cmp.Or(c.Reason, c.Message, "unknown"), false
		}
	}
	if j.Spec.Suspend != nil && *j.Spec.Suspend {
		return "suspended", false
	}
	ready := readyPods(pods)
	active := 0
	for _, p := range pods {
		if p.DeletionTimestamp == nil && (p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodPending) {
			active++
		}
	}
	if active == 0 {
		return "no running pod", false
	}
	return fmt.Sprintf("%d/%d ready", ready, active), ready > 0
}

// cronJobStatus shows the schedule and what happens now. A session on a
// cronjob runs beside its latest job, so that job decides readiness.
func cronJobStatus(c *batchv1.CronJob, jobs []*batchv1.Job, podsByOwner map[types.UID][]*corev1.Pod) (string, bool) {
	var latest *batchv1.Job
	for _, j := range jobs {
		if latest == nil || latest.CreationTimestamp.Before(&j.CreationTimestamp) ||
			latest.CreationTimestamp.Equal(&j.CreationTimestamp) && latest.Name < j.Name {
			latest = j
		}
	}
	ready := false
	if latest != nil {
		_, ready = jobStatus(latest, podsByOwner[latest.UID])
	}
	state := ""
	switch {
	case c.Spec.Suspend != nil && *c.Spec.Suspend:
		state = "suspended"
	case ready:
		state = "running " + latest.Name
	case len(c.Status.Active) > 0:
		state = fmt.Sprintf("%d active", len(c.Status.Active))
	case c.Status.LastScheduleTime != nil:
		state = "last run " + c.Status.LastScheduleTime.UTC().Format("2006-01-02 15:04Z")
	default:
		state = "never run"
	}
	return fmt.Sprintf("%s (%s)", state, c.Spec.Schedule), ready
}

// serviceTarget is ready when its selector matches a pod a session can
// start beside; it offers that pod's containers (the oldest such pod, the
// one a session picks).
func serviceTarget(s *corev1.Service, nsPods []*corev1.Pod) daemon.Target {
	t := newTarget(config.TargetService, &s.ObjectMeta, nil)
	var ports []string
	for _, p := range s.Spec.Ports {
		port := fmt.Sprintf("%d", p.Port)
		if tp := p.TargetPort.String(); tp != "0" && tp != port {
			port += "→" + tp
		}
		ports = append(ports, port+"/"+string(cmp.Or(p.Protocol, corev1.ProtocolTCP)))
	}
	if len(s.Spec.Selector) == 0 {
		t.Status = "no selector"
		if len(ports) > 0 {
			t.Description = "ports " + strings.Join(ports, ", ")
		}
		return t
	}
	sel := labels.SelectorFromSet(s.Spec.Selector)
	t.Description = "selects " + sel.String()
	if len(ports) > 0 {
		t.Description += "; ports " + strings.Join(ports, ", ")
	}
	var matched, ready []*corev1.Pod
	for _, p := range nsPods {
		if sel.Matches(labels.Set(p.Labels)) {
			matched = append(matched, p)
			if _, ok := podStatus(p); ok {
				ready = append(ready, p)
			}
		}
	}
	if len(matched) == 0 {
		t.Status = "no pods"
		return t
	}
	t.Status = fmt.Sprintf("%d/%d pods ready", len(ready), len(matched))
	t.Ready = len(ready) > 0
	pick := ready
	if len(pick) == 0 {
		pick = matched
	}
	oldest := slices.MinFunc(pick, func(a, b *corev1.Pod) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), strings.Compare(a.Name, b.Name))
	})
	t.Containers = AppContainers(&oldest.Spec)
	return t
}
