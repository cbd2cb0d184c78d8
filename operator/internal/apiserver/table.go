package apiserver

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// toTable is the Table (what kubectl get prints) of one object or a list;
// cells gives an object's row.
func toTable(obj runtime.Object, columns []metav1.TableColumnDefinition, cells func(runtime.Object) ([]any, bool)) (*metav1.Table, error) {
	t := &metav1.Table{ColumnDefinitions: columns}
	add := func(o runtime.Object) error {
		row, ok := cells(o)
		if !ok {
			return fmt.Errorf("cannot print a %T as a table", o)
		}
		t.Rows = append(t.Rows, metav1.TableRow{Cells: row, Object: runtime.RawExtension{Object: o}})
		return nil
	}
	if meta.IsListType(obj) {
		if err := meta.EachListItem(obj, add); err != nil {
			return nil, err
		}
		if l, err := meta.ListAccessor(obj); err == nil {
			t.ResourceVersion = l.GetResourceVersion()
			t.Continue = l.GetContinue()
		}
		return t, nil
	}
	if err := add(obj); err != nil {
		return nil, err
	}
	if m, err := meta.Accessor(obj); err == nil {
		t.ResourceVersion = m.GetResourceVersion()
	}
	return t, nil
}

// age is how long ago t was, as kubectl prints it.
func age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

// matches applies a list's label and field selectors; the fields an
// object has are metadata.name and metadata.namespace (what kubectl get
// NAME --watch asks for).
func matches(o *metainternalversion.ListOptions, m *metav1.ObjectMeta) bool {
	if o == nil {
		return true
	}
	if o.LabelSelector != nil && !o.LabelSelector.Matches(labels.Set(m.Labels)) {
		return false
	}
	if o.FieldSelector != nil && !o.FieldSelector.Matches(fields.Set{"metadata.name": m.Name, "metadata.namespace": m.Namespace}) {
		return false
	}
	return true
}
