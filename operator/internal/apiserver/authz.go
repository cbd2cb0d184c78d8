package apiserver

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/operator"
)

// Authorizer answers backend.Authorizer with the server's authorizer (a
// SubjectAccessReview to the cluster, cached briefly). The zero value is
// unbound until New binds it, so a broker can be built before the server.
type Authorizer struct {
	mu    sync.Mutex
	authz authorizer.Authorizer
}

var _ backend.Authorizer = (*Authorizer)(nil)

// errUnbound is returned before New has bound the authorizer.
var errUnbound = errors.New("the operator's API server is not started, so permissions cannot be checked yet")

func (a *Authorizer) bind(authz authorizer.Authorizer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.authz = authz
}

// Allowed asks whether who may do verb on the resource of the operator's
// API group (with subresource and name when not empty).
func (a *Authorizer) Allowed(ctx context.Context, who operator.UserInfo, verb, namespace, resource, subresource, name string) (bool, error) {
	a.mu.Lock()
	authz := a.authz
	a.mu.Unlock()
	if authz == nil {
		return false, errUnbound
	}
	u := &user.DefaultInfo{Name: who.Username, UID: who.UID, Groups: who.Groups}
	return allowed(ctx, authz, u, verb, namespace, resource, subresource, name)
}

// allowed asks authz about a resource of the API group.
func allowed(ctx context.Context, authz authorizer.Authorizer, u user.Info, verb, namespace, resource, subresource, name string) (bool, error) {
	attrs := authorizer.AttributesRecord{
		User:            u,
		Verb:            verb,
		Namespace:       namespace,
		APIGroup:        operator.Group,
		APIVersion:      operator.Version,
		Resource:        resource,
		Subresource:     subresource,
		Name:            name,
		ResourceRequest: true,
	}
	decision, reason, err := authz.Authorize(ctx, attrs)
	if decision == authorizer.DecisionAllow {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("ask the cluster whether %s may %s %s: %w (%s)", u.GetName(), verb, resource, err, reason)
	}
	return false, nil
}

// userInfo is the wire form of an authenticated user.
func userInfo(u user.Info) operator.UserInfo {
	return operator.UserInfo{Username: u.GetName(), UID: u.GetUID(), Groups: u.GetGroups()}
}
