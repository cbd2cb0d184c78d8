package server

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/internal/opsessions"
)

// killTimeout bounds a kill: one API call through the kube-apiserver.
const killTimeout = 30 * time.Second

// killRemote ends an operator session, anybody's, with the daemon's
// credentials: the cluster's RBAC decides (the operator lets a user delete
// their own sessions and needs the verb kill for others').
func (s *Server) killRemote(ctx context.Context, p daemon.RemoteSessionParams) error {
	if p.Namespace == "" || p.Name == "" {
		return daemon.Errorf(daemon.CodeInvalidParams, "give the operator session's namespace and name (remocal/session/list shows them under remote)")
	}
	if s.opts.Remote == nil {
		return daemon.Errorf(daemon.CodeNoOperator, "this daemon watches no cluster: start it with a kubeconfig whose cluster runs the remocal operator (docs/operator.md)")
	}
	ctx, cancel := context.WithTimeout(ctx, killTimeout)
	defer cancel()
	err := s.opts.Remote.Kill(ctx, p.Namespace, p.Name)
	switch {
	case err == nil:
		s.log.Info("killed an operator session", "namespace", p.Namespace, "name", p.Name)
		return nil
	case errors.Is(err, opsessions.ErrNoOperator):
		return daemon.Errorf(daemon.CodeNoOperator, "the cluster has no remocal operator (or the daemon has not found it yet): install it (docs/operator.md) and try again")
	case apierrors.IsNotFound(err):
		return daemon.Errorf(daemon.CodeSessionNotFound, "no operator session %s/%s; it may have ended already (remocal/session/list shows the running ones)", p.Namespace, p.Name)
	case apierrors.IsForbidden(err):
		return daemon.Errorf(daemon.CodeForbidden, "the cluster's RBAC does not let you end %s/%s: ending another user's session needs the verb kill on sessions.operator.remocal.dev (the remocal-admin ClusterRole has it); ask an admin, or the session's owner: %v", p.Namespace, p.Name, err)
	}
	return daemon.Errorf(daemon.CodeInternal, "end operator session %s/%s: %v", p.Namespace, p.Name, err)
}
