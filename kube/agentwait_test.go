package kube

import (
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestPodSecurityHint(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		hint bool
	}{
		{`pods "remocal-agent-x" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostPID=true)`, true},
		{`violates PodSecurity "restricted:v1.30": non-default capabilities`, true},
		{`exceeded quota: compute, requested: cpu=1, used: cpu=4, limited: cpu=4`, false},
		{`podsecurity`, false}, // the admission plugin's name, spelled as it reports
		{"", false},
	} {
		hint := podSecurityHint(tc.msg)
		if (hint != "") != tc.hint {
			t.Errorf("podSecurityHint(%q) = %q, want a hint: %v", tc.msg, hint, tc.hint)
		}
		e := (&creationError{ns: "shop", message: tc.msg}).Error()
		wantPrefix := "the agent's pod cannot be created in namespace shop: " + tc.msg + "; check the namespace's quotas"
		if tc.hint {
			wantPrefix = "namespace shop refuses the agent's pod: " + tc.msg + "; the agent needs hostPID"
		}
		if !strings.HasPrefix(e, wantPrefix) {
			t.Errorf("creationError = %q, want it to start with %q", e, wantPrefix)
		}
	}
}

func TestIsPullFailure(t *testing.T) {
	for reason, want := range map[string]bool{
		"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
		"ContainerCreating": false, "CrashLoopBackOff": false, "CreateContainerConfigError": false, "": false,
	} {
		if got := isPullFailure(reason); got != want {
			t.Errorf("isPullFailure(%q) = %v, want %v", reason, got, want)
		}
	}
}

func TestTail(t *testing.T) {
	long := strings.Repeat("a", 100) + strings.Repeat("b", 400)
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"  exec format error\n", "exec format error"},
		{strings.Repeat("x", 400), strings.Repeat("x", 400)},
		{long, "…" + strings.Repeat("b", 400)},
		{"\n" + long + "\n\n", "…" + strings.Repeat("b", 400)},
	} {
		if got := tail(tc.in); got != tc.want {
			t.Errorf("tail(%d bytes) = %q (%d bytes), want %d bytes", len(tc.in), got, len(got), len(tc.want))
		}
	}
}

func TestJobFinished(t *testing.T) {
	cond := func(typ batchv1.JobConditionType, st corev1.ConditionStatus) batchv1.JobStatus {
		return batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: typ, Status: st}}}
	}
	for _, tc := range []struct {
		name string
		st   batchv1.JobStatus
		want bool
	}{
		{"new", batchv1.JobStatus{}, false},
		{"running", batchv1.JobStatus{Active: 1}, false},
		{"complete", cond(batchv1.JobComplete, corev1.ConditionTrue), true},
		{"failed", cond(batchv1.JobFailed, corev1.ConditionTrue), true},
		{"failed condition false", cond(batchv1.JobFailed, corev1.ConditionFalse), false},
		{"suspended", cond(batchv1.JobSuspended, corev1.ConditionTrue), false},
		{"succeeded pod, none active", batchv1.JobStatus{Succeeded: 1}, true},
		{"failed pod, none active", batchv1.JobStatus{Failed: 1}, true},
		{"failed pod, one active", batchv1.JobStatus{Failed: 1, Active: 1}, false},
	} {
		if got := jobFinished(&batchv1.Job{Status: tc.st}); got != tc.want {
			t.Errorf("%s: jobFinished = %v, want %v", tc.name, got, tc.want)
		}
	}
}
