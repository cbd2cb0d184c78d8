package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fcache "k8s.io/client-go/tools/cache/testing"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/server/internal/opsessions"
	"github.com/remocal/remocal/test/poll"
)

func remoteSession(name, user string, port uint16) *operator.Session {
	since := metav1.NewTime(time.Date(2026, 12, 7, 10, 2, 0, 0, time.UTC))
	return &operator.Session{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: operator.SessionSpec{User: operator.UserInfo{Username: user}, Client: operator.ClientInfo{Name: user + "@desk"}, Target: "deployment.api"},
		Status: operator.SessionStatus{Phase: operator.PhaseActive, StartTime: since,
			Ports: []operator.PortStatus{{Port: port, Mode: wire.ModeSteal, Lock: true, Since: &since,
				Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": user}}}}}}
}

// The operator's sessions, anybody's, reach every client of the daemon as
// they change, and session/list includes them. The watch source is a
// fake here; test/e2e/operator watches a real operator.
func TestRemoteSessionsReachClients(t *testing.T) {
	src := fcache.NewFakeControllerSource()
	t.Cleanup(src.Shutdown) // after the daemon's cleanup, which stops the watch
	src.Add(remoteSession("s-alice", "alice", 8080))
	d := startDaemon(t, daemonOpts{remote: opsessions.New(src, nil)})
	c := connect(t, d.socket, daemonclient.Options{Name: "ide"})

	src.Add(remoteSession("s-bob", "bob", 8080))
	n := waitNotification(t, c, daemon.NotifySessionChanged, func(n daemonclient.Notification) bool {
		var sc daemon.SessionChanged
		return json.Unmarshal(n.Params, &sc) == nil && sc.Remote != nil && sc.Remote.Name == "s-bob"
	})
	var sc daemon.SessionChanged
	json.Unmarshal(n.Params, &sc)
	r := sc.Remote
	if r.User != "bob" || r.Target != "deployment/api" || len(r.Ports) != 1 || !r.Ports[0].Lock ||
		r.Ports[0].Filter == nil || r.Ports[0].Filter.Headers["X-User"] != "bob" || sc.Session.ID != "" {
		t.Errorf("bob's session reached the client as %+v", sc)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := poll.Until(ctx, 20*time.Second, func() error {
		var res daemon.SessionListResult
		if err := c.Call(ctx, daemon.MethodSessionList, nil, &res); err != nil {
			return err
		}
		if len(res.Remote) != 2 || res.Remote[0].Name != "s-alice" || res.Remote[1].Name != "s-bob" {
			return fmt.Errorf("session/list remote = %+v", res.Remote)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
