package operator

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/poll"
)

// auditEvent is the part of a kube-apiserver audit event (audit.k8s.io/v1)
// the tests read.
type auditEvent struct {
	Stage string `json:"stage"`
	Verb  string `json:"verb"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// requireAudited waits until the cluster's audit log records that user
// opened a session (create targets/portforward) on target in ns and got
// want as the answer: the operator relies on the cluster's own audit log
// to record every connect.
func requireAudited(t *testing.T, c *cluster.Cluster, user, ns, target string, want int) {
	t.Helper()
	err := poll.Until(t.Context(), 30*time.Second, func() error {
		f, err := os.Open(c.AuditLog)
		if err != nil {
			return fmt.Errorf("the cluster keeps no audit log (started before its policy existed? make cluster-down cluster-up): %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var ev auditEvent
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			o := ev.ObjectRef
			if ev.User.Username == user && o.APIGroup == operator.Group && o.Resource == operator.ResourceTargets &&
				o.Subresource == operator.SubresourcePortForward && o.Namespace == ns && o.Name == target &&
				ev.ResponseStatus.Code == want {
				return nil
			}
		}
		return fmt.Errorf("no audit event of %s opening a session on %s/%s answered %d yet", user, ns, target, want)
	})
	if err != nil {
		t.Fatal(err)
	}
}
