package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/operator"
)

// targetStorage serves targets: list and get, read from the catalogue,
// with the live session count from the registry.
type targetStorage struct {
	targets  backend.Targets
	sessions backend.Sessions
}

var (
	_ rest.Storage              = (*targetStorage)(nil)
	_ rest.Scoper               = (*targetStorage)(nil)
	_ rest.Lister               = (*targetStorage)(nil)
	_ rest.Getter               = (*targetStorage)(nil)
	_ rest.SingularNameProvider = (*targetStorage)(nil)
)

func (*targetStorage) New() runtime.Object     { return &operator.Target{} }
func (*targetStorage) NewList() runtime.Object { return &operator.TargetList{} }
func (*targetStorage) Destroy()                {}
func (*targetStorage) NamespaceScoped() bool   { return true }
func (*targetStorage) GetSingularName() string { return "target" }
func (*targetStorage) ShortNames() []string    { return []string{"tg"} }
func (*targetStorage) Categories() []string    { return []string{"remocal"} }

func (s *targetStorage) List(ctx context.Context, o *metainternalversion.ListOptions) (runtime.Object, error) {
	ns := genericapirequest.NamespaceValue(ctx)
	items, err := s.targets.List(ctx, ns)
	if err != nil {
		return nil, backendError(err, operator.ResourceTargets, "")
	}
	counts := s.sessionCounts(ns)
	out := &operator.TargetList{Items: make([]operator.Target, 0, len(items))}
	for _, t := range items {
		if !matches(o, &t.ObjectMeta) {
			continue
		}
		t.Status.Sessions = counts[t.Namespace+"/"+t.Name]
		out.Items = append(out.Items, t)
	}
	return out, nil
}

func (s *targetStorage) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	ns := genericapirequest.NamespaceValue(ctx)
	t, err := s.targets.Get(ctx, ns, name)
	if err != nil {
		return nil, backendError(err, operator.ResourceTargets, name)
	}
	t.Status.Sessions = s.sessionCounts(ns)[ns+"/"+name]
	return t, nil
}

// sessionCounts counts the live sessions by target ("namespace/name").
func (s *targetStorage) sessionCounts(ns string) map[string]int {
	sessions, _ := s.sessions.List(ns)
	counts := map[string]int{}
	for _, se := range sessions {
		counts[se.Namespace+"/"+se.Spec.Target]++
	}
	return counts
}

func (*targetStorage) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	return toTable(obj, targetColumns, func(o runtime.Object) ([]any, bool) {
		t, ok := o.(*operator.Target)
		if !ok {
			return nil, false
		}
		ready := "false"
		if t.Status.Ready {
			ready = "true"
		}
		return []any{t.Spec.Kind, t.Name, ready, t.Status.Status, int64(len(t.Status.Pods)), int64(t.Status.Sessions)}, true
	})
}

var targetColumns = []metav1.TableColumnDefinition{
	{Name: "Kind", Type: "string", Description: "The target's kind: pod, deployment, statefulset, replicaset, job, cronjob, service."},
	{Name: "Name", Type: "string", Format: "name", Description: "The target's object name: kind.name."},
	{Name: "Ready", Type: "string", Description: "Whether a session can start on it now."},
	{Name: "Status", Type: "string", Description: "Readiness for humans."},
	{Name: "Pods", Type: "integer", Description: "Ready pods; a session receives traffic from each."},
	{Name: "Sessions", Type: "integer", Description: "Live sessions on the target."},
}

// portForward is targets/portforward: it upgrades the connection to the
// agent wire protocol and hands it to the broker.
type portForward struct {
	targets backend.Targets
	broker  backend.Broker
	// stopping ends when the server stops: upgraded connections are
	// not the HTTP server's any more, so it neither ends nor waits for
	// them; running counts them so Run can.
	stopping context.Context
	running  sync.WaitGroup
	// leading is Config.Leading.
	leading func() (bool, string)
}

// serve runs one session until the broker returns or the server stops.
func (p *portForward) serve(reqCtx context.Context, conn net.Conn, who operator.UserInfo, ns, name string) {
	p.running.Add(1)
	defer p.running.Done()
	// Keep the request's values (user, audit) but not its cancellation.
	ctx, cancel := context.WithCancel(context.WithoutCancel(reqCtx))
	defer cancel()
	stop := context.AfterFunc(p.stopping, cancel)
	defer stop()
	p.broker.Serve(ctx, conn, who, ns, name)
}

var (
	_ rest.Connecter = (*portForward)(nil)
	_ rest.Storage   = (*portForward)(nil)
)

func (*portForward) New() runtime.Object { return &operator.Target{} }
func (*portForward) Destroy()            {}

// ConnectMethods: POST is what clients use (RBAC: create
// targets/portforward, as for pods/portforward); GET is accepted too.
func (*portForward) ConnectMethods() []string { return []string{http.MethodGet, http.MethodPost} }

func (*portForward) NewConnectOptions() (runtime.Object, bool, string) { return nil, false, "" }

// Connect checks the target exists (404 before anything is upgraded) and
// returns the handler that upgrades.
func (p *portForward) Connect(ctx context.Context, name string, _ runtime.Object, r rest.Responder) (http.Handler, error) {
	ns := genericapirequest.NamespaceValue(ctx)
	u, ok := genericapirequest.UserFrom(ctx)
	if !ok {
		return nil, apierrors.NewUnauthorized("no authenticated user on the request")
	}
	if p.leading != nil {
		// Endpoints lag behind a change of leader: a session that
		// reaches a follower is told to come again, not held.
		if ok, leader := p.leading(); !ok {
			return nil, apierrors.NewServiceUnavailable(errNotLeader(leader).Error())
		}
	}
	if _, err := p.targets.Get(ctx, ns, name); err != nil {
		return nil, backendError(err, operator.ResourceTargets, name)
	}
	who := userInfo(u)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !isUpgrade(req) {
			r.Error(apierrors.NewBadRequest(fmt.Sprintf(
				"targets/portforward carries a remocal session: the request must upgrade the connection to %q (Connection: Upgrade, Upgrade: %s); use remocal (remocal exec, or the remocal daemon) to start a session",
				operator.UpgradeProtocol, operator.UpgradeProtocol)))
			return
		}
		conn, err := upgrade(w)
		if err != nil {
			r.Error(apierrors.NewInternalError(err))
			return
		}
		p.serve(req.Context(), conn, who, ns, name)
	}), nil
}

// isUpgrade reports whether req asks to switch to the wire protocol.
func isUpgrade(req *http.Request) bool {
	return headerHasToken(req.Header, "Connection", "upgrade") && headerHasToken(req.Header, "Upgrade", operator.UpgradeProtocol)
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// backendError turns a backend error into a Kubernetes status.
func backendError(err error, resource, name string) error {
	switch {
	case errors.Is(err, backend.ErrNotFound):
		return apierrors.NewNotFound(operator.Resource(resource), name)
	case errors.Is(err, backend.ErrExpired):
		return apierrors.NewResourceExpired(err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return apierrors.NewTimeoutError(err.Error(), 1)
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return err
	}
	return apierrors.NewInternalError(err)
}
