package opsessions

import (
	"context"
	"errors"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/remocal/remocal/kube"
)

// Start watches the operator's sessions in the cluster env reaches, if it
// has an operator (found out in the background; without one the watcher
// stays empty): in every namespace when the account may list sessions
// cluster-wide, else in the context's namespace, the targets the daemon
// shows in either case.
func Start(env *kube.Env, log *slog.Logger) *Watcher {
	return start(func(ctx context.Context, w *Watcher) (cache.ListerWatcher, error) {
		if err := kube.DetectOperator(ctx, env); err != nil {
			return nil, err
		}
		c, err := kube.NewOperatorClient(env)
		if err != nil {
			return nil, err
		}
		ns := ""
		if _, err := c.ListSessionsWith(ctx, "", metav1.ListOptions{Limit: 1}); apierrors.IsForbidden(err) {
			ns = env.Namespace
		}
		// Kill works from the moment the log says the daemon watches:
		// callers (and tests) take the line as "the operator was found".
		w.mu.Lock()
		w.kill = c.DeleteSession
		w.mu.Unlock()
		if log != nil {
			log.Info("watching the operator's sessions", "namespace", ns)
		}
		return &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return c.ListSessionsWith(ctx, ns, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return c.WatchSessions(ctx, ns, o)
			},
		}, nil
	}, log, time.Now)
}

// ErrNoOperator is returned by Kill when the cluster has no remocal
// operator (or the daemon has not found it yet).
var ErrNoOperator = errors.New("the cluster has no remocal operator")

// Kill ends the operator session ns/name, as the cluster's RBAC allows
// (deleting another user's session needs the verb kill). Errors keep the
// API's status: apierrors.IsForbidden and IsNotFound see through them.
func (w *Watcher) Kill(ctx context.Context, ns, name string) error {
	w.mu.Lock()
	kill := w.kill
	w.mu.Unlock()
	if kill == nil {
		return ErrNoOperator
	}
	return kill(ctx, ns, name)
}
