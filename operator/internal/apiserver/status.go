package apiserver

import (
	"context"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/operator"
)

// statusStorage serves operatorstatuses: one cluster-scoped object named
// "operator", computed when asked.
type statusStorage struct {
	status backend.Status
}

var (
	_ rest.Storage              = (*statusStorage)(nil)
	_ rest.Scoper               = (*statusStorage)(nil)
	_ rest.Lister               = (*statusStorage)(nil)
	_ rest.Getter               = (*statusStorage)(nil)
	_ rest.SingularNameProvider = (*statusStorage)(nil)
)

func (*statusStorage) New() runtime.Object     { return &operator.OperatorStatus{} }
func (*statusStorage) NewList() runtime.Object { return &operator.OperatorStatusList{} }
func (*statusStorage) Destroy()                {}
func (*statusStorage) NamespaceScoped() bool   { return false }
func (*statusStorage) GetSingularName() string { return "operatorstatus" }
func (*statusStorage) Categories() []string    { return []string{"remocal"} }

func (s *statusStorage) object(ctx context.Context) *operator.OperatorStatus {
	return &operator.OperatorStatus{ObjectMeta: metav1.ObjectMeta{Name: operator.StatusName}, Status: s.status.Status(ctx)}
}

func (s *statusStorage) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	if name != operator.StatusName {
		return nil, apierrors.NewNotFound(operator.Resource(operator.ResourceStatuses), name)
	}
	return s.object(ctx), nil
}

func (s *statusStorage) List(ctx context.Context, o *metainternalversion.ListOptions) (runtime.Object, error) {
	out := &operator.OperatorStatusList{Items: []operator.OperatorStatus{}}
	if st := s.object(ctx); matches(o, &st.ObjectMeta) {
		out.Items = append(out.Items, *st)
	}
	return out, nil
}

func (*statusStorage) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	return toTable(obj, statusColumns, func(o runtime.Object) ([]any, bool) {
		st, ok := o.(*operator.OperatorStatus)
		if !ok {
			return nil, false
		}
		return []any{st.Name, st.Status.Version, st.Status.Leader, int64(len(st.Status.Agents)), int64(st.Status.Sessions),
			st.Status.Healthy, strings.Join(st.Status.Problems, "; ")}, true
	})
}

var statusColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "Always \"operator\"."},
	{Name: "Version", Type: "string", Description: "The operator's version."},
	{Name: "Leader", Type: "string", Description: "The pod that serves sessions."},
	{Name: "Agents", Type: "integer", Description: "Agents the operator keeps."},
	{Name: "Sessions", Type: "integer", Description: "Live sessions."},
	{Name: "Healthy", Type: "boolean", Description: "Whether nothing is wrong."},
	{Name: "Problems", Type: "string", Description: "What is wrong."},
}
