package apiserver

import (
	"testing"

	"go.uber.org/goleak"
	"k8s.io/apiserver/pkg/server/healthz"
)

func TestMain(m *testing.M) {
	// The log health check starts a process-wide flusher on its first
	// call and never stops it: start it now and leave it out.
	if err := healthz.LogHealthz.Check(nil); err != nil {
		panic(err)
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreCurrent(),
		// k8s.io/apiserver's own: the work queues of certificate content
		// controllers a server builds but shuts down only when it ran
		// them.
		goleak.IgnoreTopFunction("k8s.io/client-go/util/workqueue.(*Typed[...]).updateUnfinishedWorkLoop"),
	)
}
