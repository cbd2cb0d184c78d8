// Package backend is the seam between the operator's API server (which
// authenticates and authorizes callers and speaks the Kubernetes API) and
// the parts that do the work: the target catalogue, the session broker and
// its session registry. The API server depends on these interfaces only, so
// it can be tested with small fakes beside the real integration tests.
package backend

import (
	"context"
	"errors"
	"net"

	"github.com/remocal/remocal/protocol/operator"
)

// ErrNotFound is the category of "no such target or session" errors;
// the API server answers them with a Kubernetes NotFound status.
var ErrNotFound = errors.New("not found")

// ErrExpired says a watch asked for a resourceVersion older than the
// registry remembers; the API server answers 410 Gone and the client
// lists again.
var ErrExpired = errors.New("resource version too old")

// Targets is the catalogue of what sessions can attach to.
type Targets interface {
	// List returns the targets in namespace ("" for every namespace).
	List(ctx context.Context, namespace string) ([]operator.Target, error)
	// Get returns one target by object name ("deployment.api"); an
	// unknown one is ErrNotFound.
	Get(ctx context.Context, namespace, name string) (*operator.Target, error)
}

// EventType is the kind of a session change.
type EventType string

const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
)

// SessionEvent is one change of one session. Session.ResourceVersion is
// the registry's version after the change.
type SessionEvent struct {
	Type    EventType
	Session operator.Session
}

// Sessions is the live session registry.
type Sessions interface {
	// List returns the sessions in namespace ("" for all) and the
	// registry's resourceVersion at that moment.
	List(namespace string) ([]operator.Session, string)
	// Get returns one session; false when there is none.
	Get(namespace, name string) (operator.Session, bool)
	// Watch sends the changes after resourceVersion until ctx ends
	// (the channel is then closed). An empty or "0" resourceVersion
	// first sends every current session as Added. A version older than
	// the registry remembers is ErrExpired.
	Watch(ctx context.Context, namespace, resourceVersion string) (<-chan SessionEvent, error)
	// Delete ends a session: its locks are released, its agents'
	// subscriptions removed and its client told reason. Deleting a
	// session that does not exist is ErrNotFound. Who may delete whose
	// session is the API server's decision, not the registry's.
	Delete(ctx context.Context, namespace, name, reason string) error
}

// Authorizer asks the cluster (SubjectAccessReview, through the API
// server's delegated authorizer) whether who may do verb on the resource.
// The broker uses it for onConflict: override (VerbOverride on targets).
type Authorizer interface {
	Allowed(ctx context.Context, who operator.UserInfo, verb, namespace, resource, subresource, name string) (bool, error)
}

// Broker serves sessions.
type Broker interface {
	// Serve runs one client connection, already upgraded, for who on
	// the target (namespace and object name). It speaks protocol/wire as
	// the agent side, returns when the connection ends and closes conn.
	// The caller authenticated who and checked create on
	// targets/portforward.
	Serve(ctx context.Context, conn net.Conn, who operator.UserInfo, namespace, target string)
}

// Status reports the operator's own state.
type Status interface {
	Status(ctx context.Context) operator.OperatorState
}
