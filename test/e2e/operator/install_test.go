package operator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/poll"
)

// TestInstallServesBoundUsers installs the chart as an admin would, binds
// alice to remocal-user and erin to remocal-admin through the chart's
// values, and checks what each identity gets through the kube-apiserver:
// alice lists targets and the operator's status with kubectl, dave (no
// binding) is refused by the API server, erin's admin role holds the
// user's rights too. Then it upgrades (the CA must not change) and
// uninstalls (the APIService and the cluster-wide RBAC must go).
func TestInstallServesBoundUsers(t *testing.T) {
	c := cluster.Require(t)
	buildImages(t)
	in := installChart(t, c, `{
  "rbac": {
    "users": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
    "admins": [{"kind": "Group", "name": "remocal-e2e-admins", "apiGroup": "rbac.authorization.k8s.io"}]
  }
}`)
	apps := c.Namespace(t)
	ctx := testContext(t, 4*time.Minute)
	if err := c.Apply(ctx, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: %s
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, remocal-test: web}}
    spec:
      containers:
      - name: web
        image: %s
        imagePullPolicy: Never
`, apps, cluster.ToolboxImage)); err != nil {
		t.Fatal(err)
	}
	alice := c.As(c.User(t, "alice", "remocal-e2e-devs"))
	dave := c.As(c.User(t, "dave", "remocal-e2e-devs"))
	erin := c.As(c.User(t, "erin", "remocal-e2e-admins"))

	t.Run("roles", func(t *testing.T) {
		// What RBAC says, before the operator serves anything: the shipped
		// roles as bound through the chart's values. (kubectl auth can-i
		// cannot ask yet: it maps resources through discovery, which lacks
		// the operator's until it serves.)
		const g = operator.Group
		for _, tc := range []struct {
			who                         *cluster.Cluster
			name, verb, group, res, sub string
			want                        bool
		}{
			{alice, "alice", "list", g, "targets", "", true},
			{alice, "alice", "create", g, "targets", "portforward", true},
			{alice, "alice", "delete", g, "sessions", "", true},
			{alice, "alice", "get", g, "operatorstatuses", "", true},
			{alice, "alice", "override", g, "targets", "", false},
			{alice, "alice", "kill", g, "sessions", "", false},
			// No rights on pods, port-forwards or Jobs: only the operator's API.
			{alice, "alice", "create", "", "pods", "portforward", false},
			{alice, "alice", "create", "batch", "jobs", "", false},
			{dave, "dave", "list", g, "targets", "", false},
			// remocal-admin aggregates remocal-user (the controller manager
			// fills it in: poll).
			{erin, "erin", "list", g, "targets", "", true},
			{erin, "erin", "override", g, "targets", "", true},
			{erin, "erin", "kill", g, "sessions", "", true},
			{erin, "erin", "deletecollection", g, "sessions", "", true},
		} {
			err := poll.Until(ctx, 30*time.Second, func() error {
				got, err := canI(ctx, tc.who, &authorizationv1.ResourceAttributes{
					Namespace: apps, Verb: tc.verb, Group: tc.group, Resource: tc.res, Subresource: tc.sub,
				})
				if err != nil {
					return err
				}
				if got != tc.want {
					return fmt.Errorf("may %s %s %s %s/%s? %v, want %v", tc.name, tc.verb, tc.group, tc.res, tc.sub, got, tc.want)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}
	})

	in.waitAvailable(t)

	t.Run("alice lists targets", func(t *testing.T) {
		want := operator.TargetName("deployment", "web")
		err := poll.Until(ctx, time.Minute, func() error {
			out, err := alice.Kubectl(ctx, "get", "targets", "-n", apps)
			if err != nil {
				return err
			}
			if !strings.Contains(out, want) {
				return fmt.Errorf("kubectl get targets -n %s as alice shows no %s:\n%s", apps, want, out)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("alice reads the operator's status", func(t *testing.T) {
		out, err := alice.Kubectl(ctx, "get", "operatorstatuses", operator.StatusName, "-o", "name")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != "operatorstatus.operator.remocal.dev/"+operator.StatusName {
			t.Fatalf("kubectl get operatorstatuses %s as alice: %q", operator.StatusName, out)
		}
	})

	t.Run("dave is refused by the API server", func(t *testing.T) {
		cs, err := clientset(dave)
		if err != nil {
			t.Fatal(err)
		}
		err = cs.RESTClient().Get().AbsPath("/apis", operator.Group, operator.Version, "namespaces", apps, operator.ResourceTargets).Do(ctx).Error()
		if !apierrors.IsForbidden(err) {
			t.Fatalf("dave listing targets: %v, want 403 Forbidden", err)
		}
		if _, err := dave.Kubectl(ctx, "get", "targets", "-n", apps); err == nil {
			t.Fatal("kubectl get targets as dave succeeded")
		}
	})

	t.Run("upgrade keeps the CA", func(t *testing.T) {
		before := caBundle(ctx, t, c)
		if _, err := c.Helm(ctx, "upgrade", in.release, chartDir(t), "--namespace", in.ns, "--reuse-values", "--set", "sessionTTL=3m"); err != nil {
			t.Fatal(err)
		}
		if after := caBundle(ctx, t, c); after != before {
			t.Fatal("helm upgrade replaced the operator's CA: clients' connections through the aggregator would break")
		}
		in.waitAvailable(t)
	})

	in.uninstall(t)
}

// caBundle is the APIService's caBundle now.
func caBundle(ctx context.Context, t *testing.T, c *cluster.Cluster) string {
	t.Helper()
	out, err := c.Kubectl(ctx, "get", "apiservice", apiService, "-o", "jsonpath={.spec.caBundle}")
	if err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("the APIService's caBundle: %q %v", out, err)
	}
	return out
}

// clientset is a client-go clientset acting as c's identity.
func clientset(c *cluster.Cluster) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// canI asks the kube-apiserver whether c's identity may do what attrs say
// (a SelfSubjectAccessReview, as kubectl auth can-i sends).
func canI(ctx context.Context, c *cluster.Cluster, attrs *authorizationv1.ResourceAttributes) (bool, error) {
	cs, err := clientset(c)
	if err != nil {
		return false, err
	}
	r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return r.Status.Allowed, nil
}
