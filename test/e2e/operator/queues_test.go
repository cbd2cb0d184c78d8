package operator

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/poll"
)

// The chart installs the RemocalQueueConsumer CRD: the golden consumer of
// protocol/testdata is accepted and reads back unchanged, and the schema
// refuses what the operator could never act on, naming the field.
func TestQueueConsumerCRD(t *testing.T) {
	f := newFixture(t)
	root, err := cluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join(root, "protocol", "testdata", "queuesplit", "remocalqueueconsumer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want queuesplit.RemocalQueueConsumer
	if err := json.Unmarshal(golden, &want); err != nil {
		t.Fatal(err)
	}
	want.Namespace = f.ns
	manifest, err := json.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	// The chart's CRDs were created with the operator's install; the
	// apiserver serves a new CRD's resource a moment after.
	if err := poll.Until(f.ctx(), 30*time.Second, func() error {
		_, err := f.c.KubectlInput(f.ctx(), string(manifest), "apply", "-f", "-")
		return err
	}); err != nil {
		t.Fatalf("applying the golden RemocalQueueConsumer: %v", err)
	}
	out, err := f.c.Kubectl(f.ctx(), "-n", f.ns, "get", "remocalqueueconsumers.queues.remocal.dev", want.Name, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got queuesplit.RemocalQueueConsumer
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Spec, want.Spec) {
		t.Errorf("read back %+v, applied %+v", got.Spec, want.Spec)
	}
	if err := got.Spec.Validate(); err != nil {
		t.Errorf("the golden consumer does not validate: %v", err)
	}

	bad := want.DeepCopy()
	bad.Name = "bad-kind"
	bad.Spec.Workload.Kind = "daemonset"
	manifest, err = json.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	out, err = f.c.KubectlInput(f.ctx(), string(manifest), "apply", "-f", "-")
	if err == nil {
		t.Fatalf("a consumer of a daemonset was accepted:\n%s", out)
	}
	if msg := err.Error() + out; !strings.Contains(msg, "spec.workload.kind") {
		t.Errorf("the refusal does not name spec.workload.kind: %s", msg)
	}
}
