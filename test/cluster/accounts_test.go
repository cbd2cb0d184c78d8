package cluster_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/remocal/remocal/test/cluster"
)

// TestUserIsAuthenticatedByItsCertificate: the kube-apiserver takes a
// User's certificate for that user and groups, and the user has no rights
// until bound.
func TestUserIsAuthenticatedByItsCertificate(t *testing.T) {
	c := cluster.Require(t)
	ctx := ctxFor(t, time.Minute)
	alice := c.As(c.User(t, "alice", "developers", "team-a"))
	out, err := alice.Kubectl(ctx, "auth", "whoami", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &review); err != nil {
		t.Fatalf("kubectl auth whoami -o json: %v\n%s", err, out)
	}
	u := review.Status.UserInfo
	if u.Username != "alice" || !slices.Contains(u.Groups, "developers") || !slices.Contains(u.Groups, "team-a") {
		t.Fatalf("the apiserver sees %q in %v, want alice in developers and team-a", u.Username, u.Groups)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", alice.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("alice without a binding listing pods: %v, want 403 Forbidden", err)
	}
}
