// Package workloadenv repoints a workload's environment variables (the
// queue a consumer reads) and waits until every pod runs the new values,
// in a way an operator restarted at any moment can finish or undo: the
// original values are recorded on the workload object itself, in the same
// update that changes them, so there is never a changed workload without
// its record, nor a record the operator alone remembers.
//
// The RBAC it needs, on the workloads' namespaces: get, update
// deployments and statefulsets; list pods and replicasets
// (docs/operator.md). A StatefulSet's revision is read from its status
// and its pods' controller-revision-hash label, so it needs no access to
// controllerrevisions.
package workloadenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Annotation holds the recorded originals on the workload object: a JSON
// object from each split's key to the variables' values before the first
// Set under that key. One annotation for all keys, so any key is allowed
// (annotation names are limited to 63 characters of a small alphabet)
// and a Set of one key sees what the others changed.
const Annotation = "queues.remocal.dev/original-env"

// Workload kinds a Ref may name.
const (
	Deployment  = "deployment"
	StatefulSet = "statefulset"
)

// Ref names a container of a workload.
type Ref struct {
	Namespace string
	Kind      string // Deployment or StatefulSet
	Name      string
	// Container is the container's name; empty means the pod template's
	// first container.
	Container string
}

func (r Ref) String() string {
	s := r.Kind + "/" + r.Name + " in namespace " + r.Namespace
	if r.Container != "" {
		s = "container " + r.Container + " of " + s
	}
	return s
}

// Reason classifies an Error.
type Reason string

const (
	// ReasonUnknownKind: Ref.Kind is neither Deployment nor StatefulSet.
	ReasonUnknownKind Reason = "UnknownKind"
	// ReasonUnknownContainer: the pod template has no such container (or none).
	ReasonUnknownContainer Reason = "UnknownContainer"
	// ReasonMissing: the container does not declare the variable in env.
	ReasonMissing Reason = "Missing"
	// ReasonValueFrom: the variable takes its value from a ConfigMap,
	// Secret or field reference, not a literal value.
	ReasonValueFrom Reason = "ValueFrom"
	// ReasonHeldByOtherKey: another key already changed the variable.
	ReasonHeldByOtherKey Reason = "HeldByOtherKey"
	// ReasonBadRecord: the annotation is not what this package writes.
	ReasonBadRecord Reason = "BadRecord"
	// ReasonBadKey: Set or Restore got an empty key.
	ReasonBadKey Reason = "BadKey"
)

// Error is a workload this package cannot act on as it is, with what to
// do about it. Classify it with errors.As and its Reason.
type Error struct {
	Ref    Ref
	Reason Reason
	// Var is the variable concerned, if one is.
	Var string
	// Detail says what was found; Hint what to do.
	Detail, Hint string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Ref.String())
	if e.Var != "" {
		fmt.Fprintf(&b, ", variable %s", e.Var)
	}
	fmt.Fprintf(&b, ": %s", e.Detail)
	if e.Hint != "" {
		fmt.Fprintf(&b, "; %s", e.Hint)
	}
	return b.String()
}

// ErrNotFound wraps the apiserver's answer when the workload does not exist.
var ErrNotFound = errors.New("workload not found")

// Read returns the current values of the named variables of the
// container, as the workload's pod template declares them. Every name
// must be declared with a literal value: the operator needs the original
// to know which queue the workload reads.
func Read(ctx context.Context, cs kubernetes.Interface, ref Ref, names []string) (map[string]string, error) {
	w, err := get(ctx, cs, ref)
	if err != nil {
		return nil, err
	}
	c, err := container(ref, w.template())
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		v, err := literal(ref, c, n)
		if err != nil {
			return nil, err
		}
		out[n] = v
	}
	return out, nil
}

// Set gives the named variables of the container the values, recording
// their values from before the first Set under key in Annotation, in the
// same update. A Set under a key that has a record keeps it (it is the
// original, and Set may run again after a crash); a variable the record
// lacks is added to it. Conflicting writers are retried on a fresh read.
// A variable another key changed is refused (ReasonHeldByOtherKey).
func Set(ctx context.Context, cs kubernetes.Interface, ref Ref, key string, values map[string]string) error {
	if err := checkKey(ref, key); err != nil {
		return err
	}
	return modify(ctx, cs, ref, func(w workload, rec record) error {
		c, err := container(ref, w.template())
		if err != nil {
			return err
		}
		mine := rec[key]
		if mine == nil {
			mine = map[string]string{}
		}
		for _, n := range slices.Sorted(maps.Keys(values)) {
			if other := rec.holder(n, key); other != "" {
				return &Error{Ref: ref, Reason: ReasonHeldByOtherKey, Var: n,
					Detail: fmt.Sprintf("already changed for %q", other),
					Hint:   "restore that one first, or give each queue variables of its own"}
			}
			cur, err := literal(ref, c, n)
			if err != nil {
				return err
			}
			if _, ok := mine[n]; !ok {
				mine[n] = cur
			}
			setEnv(c, n, values[n])
		}
		rec[key] = mine
		return nil
	})
}

// Recorded returns the recorded originals of every key with a Set not
// restored yet: what an operator restarted mid-flight has to finish or
// undo.
func Recorded(ctx context.Context, cs kubernetes.Interface, ref Ref) (map[string]map[string]string, error) {
	w, err := get(ctx, cs, ref)
	if err != nil {
		return nil, err
	}
	return readRecord(ref, w.meta())
}

// Restore puts back the values recorded under key and removes the record,
// in one update. Without a record under key it changes nothing.
func Restore(ctx context.Context, cs kubernetes.Interface, ref Ref, key string) error {
	if err := checkKey(ref, key); err != nil {
		return err
	}
	return modify(ctx, cs, ref, func(w workload, rec record) error {
		orig, ok := rec[key]
		if !ok {
			return errUnchanged
		}
		c, err := container(ref, w.template())
		if err != nil {
			return err
		}
		for n, v := range orig {
			setEnv(c, n, v)
		}
		delete(rec, key)
		return nil
	})
}

func checkKey(ref Ref, key string) error {
	if key == "" {
		return &Error{Ref: ref, Reason: ReasonBadKey, Detail: "the split's key is empty",
			Hint: "name the split (e.g. consumer/queue), so its record can be told from others"}
	}
	return nil
}

// errUnchanged tells modify there is nothing to write.
var errUnchanged = errors.New("unchanged")

// record is Annotation's content: key → variable → original value.
type record map[string]map[string]string

// holder is the key other than key whose record has the variable, if any.
func (r record) holder(name, key string) string {
	for _, k := range slices.Sorted(maps.Keys(r)) {
		if _, ok := r[k][name]; ok && k != key {
			return k
		}
	}
	return ""
}

func readRecord(ref Ref, m *metav1.ObjectMeta) (record, error) {
	rec := record{}
	s, ok := m.Annotations[Annotation]
	if !ok {
		return rec, nil
	}
	if err := json.Unmarshal([]byte(s), &rec); err != nil {
		return nil, &Error{Ref: ref, Reason: ReasonBadRecord,
			Detail: fmt.Sprintf("annotation %s is not a JSON object of objects of strings: %v", Annotation, err),
			Hint:   "it was changed by hand: restore the variables' original values and remove the annotation"}
	}
	for k, v := range rec {
		if v == nil {
			rec[k] = map[string]string{}
		}
	}
	return rec, nil
}

// modify reads the workload, lets change edit its template and record, and
// writes both in one update, retrying on a fresh read when someone else
// wrote in between (the update carries the resourceVersion it read).
func modify(ctx context.Context, cs kubernetes.Interface, ref Ref, change func(workload, record) error) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		w, err := get(ctx, cs, ref)
		if err != nil {
			return err
		}
		m := w.meta()
		rec, err := readRecord(ref, m)
		if err != nil {
			return err
		}
		if err := change(w, rec); err != nil {
			if errors.Is(err, errUnchanged) {
				return nil
			}
			return err
		}
		if len(rec) == 0 {
			delete(m.Annotations, Annotation)
		} else {
			b, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if m.Annotations == nil {
				m.Annotations = map[string]string{}
			}
			m.Annotations[Annotation] = string(b)
		}
		if err := w.update(ctx, cs); err != nil {
			return fmt.Errorf("update %s: %w", ref, err)
		}
		return nil
	})
}

// workload is a Deployment or a StatefulSet.
type workload struct {
	d *appsv1.Deployment
	s *appsv1.StatefulSet
}

func (w workload) meta() *metav1.ObjectMeta {
	if w.d != nil {
		return &w.d.ObjectMeta
	}
	return &w.s.ObjectMeta
}

func (w workload) template() *corev1.PodTemplateSpec {
	if w.d != nil {
		return &w.d.Spec.Template
	}
	return &w.s.Spec.Template
}

func (w workload) update(ctx context.Context, cs kubernetes.Interface) error {
	m := w.meta()
	var err error
	if w.d != nil {
		_, err = cs.AppsV1().Deployments(m.Namespace).Update(ctx, w.d, metav1.UpdateOptions{})
	} else {
		_, err = cs.AppsV1().StatefulSets(m.Namespace).Update(ctx, w.s, metav1.UpdateOptions{})
	}
	return err
}

func get(ctx context.Context, cs kubernetes.Interface, ref Ref) (workload, error) {
	var w workload
	var err error
	switch ref.Kind {
	case Deployment:
		w.d, err = cs.AppsV1().Deployments(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	case StatefulSet:
		w.s, err = cs.AppsV1().StatefulSets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	default:
		return w, &Error{Ref: ref, Reason: ReasonUnknownKind,
			Detail: fmt.Sprintf("kind %q is not supported", ref.Kind),
			Hint:   "name a " + Deployment + " or a " + StatefulSet}
	}
	if isNotFound(err) {
		return w, fmt.Errorf("%s: %w: %w", ref, ErrNotFound, err)
	}
	if err != nil {
		return w, fmt.Errorf("read %s: %w", ref, err)
	}
	return w, nil
}

// container is the Ref's container of the template.
func container(ref Ref, t *corev1.PodTemplateSpec) (*corev1.Container, error) {
	cs := t.Spec.Containers
	if ref.Container == "" {
		if len(cs) == 0 {
			return nil, &Error{Ref: ref, Reason: ReasonUnknownContainer, Detail: "the pod template has no container"}
		}
		return &cs[0], nil
	}
	names := make([]string, len(cs))
	for i := range cs {
		if cs[i].Name == ref.Container {
			return &cs[i], nil
		}
		names[i] = cs[i].Name
	}
	return nil, &Error{Ref: ref, Reason: ReasonUnknownContainer,
		Detail: fmt.Sprintf("the pod template has no container %q (it has %s)", ref.Container, strings.Join(names, ", ")),
		Hint:   "name one of those in the RemocalQueueConsumer's spec.workload.container"}
}

// literal is the variable's value in c's env, which must be a literal.
// With duplicates the last one counts, as for the kubelet.
func literal(ref Ref, c *corev1.Container, name string) (string, error) {
	for j := len(c.Env) - 1; j >= 0; j-- {
		e := c.Env[j]
		if e.Name != name {
			continue
		}
		if e.ValueFrom != nil {
			return "", &Error{Ref: ref, Reason: ReasonValueFrom, Var: name,
				Detail: "its value comes from " + source(e.ValueFrom) + ", not a literal value",
				Hint:   "declare it in the container's env with a literal value (value: ...), so the operator knows the original queue and can restore it"}
		}
		return e.Value, nil
	}
	hint := "declare it in the container's env with a literal value (value: ...)"
	if len(c.EnvFrom) > 0 {
		hint += "; values from envFrom are not read"
	}
	return "", &Error{Ref: ref, Reason: ReasonMissing, Var: name,
		Detail: "container " + c.Name + " does not declare it in env", Hint: hint}
}

// setEnv gives every declaration of the variable in c's env the literal
// value (a Restore may find a reference someone put there meanwhile), or
// appends one.
func setEnv(c *corev1.Container, name, value string) {
	found := false
	for i := range c.Env {
		if c.Env[i].Name == name {
			c.Env[i].Value, c.Env[i].ValueFrom = value, nil
			found = true
		}
	}
	if !found {
		c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
	}
}

// source describes a valueFrom for the user.
func source(v *corev1.EnvVarSource) string {
	switch {
	case v.ConfigMapKeyRef != nil:
		return fmt.Sprintf("key %s of ConfigMap %s", v.ConfigMapKeyRef.Key, v.ConfigMapKeyRef.Name)
	case v.SecretKeyRef != nil:
		return fmt.Sprintf("key %s of Secret %s", v.SecretKeyRef.Key, v.SecretKeyRef.Name)
	case v.FieldRef != nil:
		return "field " + v.FieldRef.FieldPath
	case v.ResourceFieldRef != nil:
		return "resource " + v.ResourceFieldRef.Resource
	default:
		return "a reference"
	}
}

func isNotFound(err error) bool { return err != nil && apierrors.IsNotFound(err) }
