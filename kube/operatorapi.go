package kube

import (
	"context"
	"fmt"

	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/remocal/remocal/protocol/operator"
)

// OperatorClient is a typed client of the operator's API (JSON), through
// the kube-apiserver with the user's credentials: what `remocal sessions`,
// `remocal operator status` and the daemon use.
type OperatorClient struct {
	env  *Env
	rest *rest.RESTClient
}

var operatorScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := operator.AddToScheme(s); err != nil {
		panic(err) // the types are ours; a failure is a bug
	}
	return s
}()

// operatorParams encodes list options for the operator's group version.
var operatorParams = runtime.NewParameterCodec(operatorScheme)

// NewOperatorClient makes a client of the operator's API from env.
func NewOperatorClient(env *Env) (*OperatorClient, error) {
	cfg := rest.CopyConfig(env.Config)
	cfg.GroupVersion = &operator.SchemeGroupVersion
	cfg.APIPath = "/apis"
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(operatorScheme).WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("a client of the operator's API: %w", err)
	}
	return &OperatorClient{env: env, rest: rc}, nil
}

// REST is the underlying client, for list-watches.
func (c *OperatorClient) REST() *rest.RESTClient { return c.rest }

// ListSessions lists the sessions of namespace ns, or of every namespace
// when ns is "".
func (c *OperatorClient) ListSessions(ctx context.Context, ns string) (*operator.SessionList, error) {
	return c.ListSessionsWith(ctx, ns, metav1.ListOptions{})
}

// ListSessionsWith lists with options (a list-watch's resource version,
// a limit).
func (c *OperatorClient) ListSessionsWith(ctx context.Context, ns string, opts metav1.ListOptions) (*operator.SessionList, error) {
	out := &operator.SessionList{}
	err := c.rest.Get().Namespace(ns).Resource(operator.ResourceSessions).
		VersionedParams(&opts, operatorParams).Do(ctx).Into(out)
	if err != nil {
		return nil, c.explain(err, "list", operator.ResourceSessions, ns)
	}
	return out, nil
}

// ListTargets lists the targets of namespace ns ("" for all), as the
// operator serves them.
func (c *OperatorClient) ListTargets(ctx context.Context, ns string) (*operator.TargetList, error) {
	out := &operator.TargetList{}
	err := c.rest.Get().Namespace(ns).Resource(operator.ResourceTargets).Do(ctx).Into(out)
	if err != nil {
		return nil, c.explain(err, "list", operator.ResourceTargets, ns)
	}
	return out, nil
}

// GetTarget reads one target (its object name, "deployment.api"), with
// the policies that apply to it.
func (c *OperatorClient) GetTarget(ctx context.Context, ns, name string) (*operator.Target, error) {
	out := &operator.Target{}
	err := c.rest.Get().Namespace(ns).Resource(operator.ResourceTargets).Name(name).Do(ctx).Into(out)
	if err != nil {
		return nil, c.explain(err, "get", operator.ResourceTargets+"/"+name, ns)
	}
	return out, nil
}

// WatchSessions watches the sessions of ns ("" for all).
func (c *OperatorClient) WatchSessions(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rest.Get().Namespace(ns).Resource(operator.ResourceSessions).
		VersionedParams(&opts, operatorParams).Watch(ctx)
}

// DeleteSession ends a session.
func (c *OperatorClient) DeleteSession(ctx context.Context, ns, name string) error {
	err := c.rest.Delete().Namespace(ns).Resource(operator.ResourceSessions).Name(name).Do(ctx).Error()
	if err != nil {
		return c.explain(err, "delete", operator.ResourceSessions+"/"+name, ns)
	}
	return nil
}

// Status reads the operator's own status.
func (c *OperatorClient) Status(ctx context.Context) (*operator.OperatorStatus, error) {
	out := &operator.OperatorStatus{}
	err := c.rest.Get().Resource(operator.ResourceStatuses).Name(operator.StatusName).Do(ctx).Into(out)
	if err != nil {
		return nil, c.explain(err, "get", operator.ResourceStatuses, "")
	}
	return out, nil
}

// Whoami is the user name the cluster authenticates these credentials
// as (a SelfSubjectReview), for telling the user's own sessions from
// others'.
func (c *OperatorClient) Whoami(ctx context.Context) (string, error) {
	r, err := c.env.Client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("ask the cluster who you are (SelfSubjectReview): %w", err)
	}
	return r.Status.UserInfo.Username, nil
}

// OperatorAPIError is a refusal of the operator's API, with what was
// asked: errors.As finds it, and it wraps the Kubernetes status error
// (apierrors.IsForbidden ... work through it).
type OperatorAPIError struct {
	Verb, Resource, Namespace string
	Context                   string
	Err                       error
}

func (e *OperatorAPIError) Unwrap() error { return e.Err }

func (e *OperatorAPIError) Error() string {
	where := ""
	if e.Namespace != "" {
		where = " in namespace " + e.Namespace
	}
	switch {
	case apierrors.IsForbidden(e.Err):
		role := "the remocal-user ClusterRole"
		if e.Verb == "delete" {
			role += " (your own sessions) or remocal-admin (anybody's)"
		}
		return fmt.Sprintf("the cluster refused to %s %s%s (%s); ask your administrator for %s",
			e.Verb, e.Resource, where, statusMessage(e.Err), role)
	case apierrors.IsNotFound(e.Err) && e.Verb == "delete":
		return fmt.Sprintf("no session %s%s (list them with: remocal sessions)", e.Resource, where)
	case apierrors.IsNotFound(e.Err):
		return fmt.Sprintf("%s %s%s: the cluster of context %q does not serve the operator's API (is the operator installed? remocal operator status)",
			e.Verb, e.Resource, where, e.Context)
	case apierrors.IsServiceUnavailable(e.Err):
		return fmt.Sprintf("%s %s%s: the operator is unavailable (%s); check it with: kubectl get apiservice %s",
			e.Verb, e.Resource, where, statusMessage(e.Err), operator.APIServiceName)
	}
	return fmt.Sprintf("%s %s%s: %v", e.Verb, e.Resource, where, e.Err)
}

func (c *OperatorClient) explain(err error, verb, resource, ns string) error {
	return &OperatorAPIError{Verb: verb, Resource: resource, Namespace: ns, Context: c.env.Context, Err: err}
}
