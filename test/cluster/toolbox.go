package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ToolboxPod is the name of the pod Toolbox starts.
const ToolboxPod = "toolbox"

// Toolbox is a pod of the toolbox image in a namespace, from which tests
// send requests as another service in the cluster would: traffic to pod
// and Service addresses must start inside the cluster, never from the
// machine's root network namespace.
type Toolbox struct {
	c    *Cluster
	ns   string
	once sync.Once
	err  error
}

// Toolbox returns the toolbox of namespace ns; its pod starts on first use
// and goes with the namespace.
func (c *Cluster) Toolbox(ns string) *Toolbox { return &Toolbox{c: c, ns: ns} }

// Get sends GET url from the toolbox pod with headers ("Name: value") and
// returns the body, or an error with what the toolbox said.
func (tb *Toolbox) Get(ctx context.Context, url string, headers ...string) (string, error) {
	tb.once.Do(func() { tb.err = tb.start(ctx) })
	if tb.err != nil {
		return "", tb.err
	}
	args := []string{"-n", tb.ns, "exec", ToolboxPod, "--", "/toolbox", "get", "-timeout", "10s"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	out, err := tb.c.Kubectl(ctx, append(args, url)...)
	return strings.TrimSpace(out), err
}

func (tb *Toolbox) start(ctx context.Context) error {
	err := tb.c.Apply(ctx, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: toolbox, image: %s, imagePullPolicy: Never, args: [sleep]}
`, ToolboxPod, tb.ns, ToolboxImage))
	if err != nil {
		return fmt.Errorf("start the toolbox pod in %s: %w", tb.ns, err)
	}
	return tb.c.WaitPod(ctx, tb.ns, ToolboxPod, "Ready", 90*time.Second)
}
