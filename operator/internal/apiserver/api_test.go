package apiserver

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"github.com/remocal/remocal/protocol/operator"
)

func TestCallersWithoutIdentityAreRefused(t *testing.T) {
	ts := startServer(t)
	path := ts.base + api + "/namespaces/shop/targets"
	// No credentials at all: anonymous is allowed on the health paths only.
	res, err := ts.client(tls.Certificate{}).Get(path)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("without credentials: %s, want 401", res.Status)
	}
	// Identity headers from a client the front-proxy CA did not sign are
	// not believed.
	req, _ := http.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("X-Remote-User", "alice")
	res, err = ts.client(ts.stranger).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("headers from an untrusted client: %s, want 401", res.Status)
	}
	// Through the front proxy: authenticated, then authorized by RBAC.
	if code, body := ts.do(t, http.MethodGet, "alice", api+"/namespaces/shop/targets", nil); code != http.StatusOK {
		t.Errorf("alice through the front proxy: %d %s", code, body)
	}
	if code, body := ts.do(t, http.MethodGet, "mallory", api+"/namespaces/shop/targets", nil); code != http.StatusForbidden {
		t.Errorf("a user without RBAC: %d %s, want 403", code, body)
	}
}

func TestTargetsListAndGet(t *testing.T) {
	ts := startServer(t)
	var list operator.TargetList
	if code, body := ts.do(t, http.MethodGet, "alice", api+"/namespaces/shop/targets", &list); code != http.StatusOK {
		t.Fatalf("list: %d %s", code, body)
	}
	got := map[string]int{}
	for _, tg := range list.Items {
		got[tg.Name] = tg.Status.Sessions
	}
	if len(got) != 2 || got["deployment.inventory"] != 2 || got["pod.orders-1"] != 1 {
		t.Errorf("targets in shop with their session counts: %v", got)
	}
	if list.Kind != "TargetList" || list.APIVersion != operator.SchemeGroupVersion.String() {
		t.Errorf("list type: %s %s", list.APIVersion, list.Kind)
	}
	if code, _ := ts.do(t, http.MethodGet, "alice", api+"/targets", &list); code != http.StatusOK || len(list.Items) != 3 {
		t.Errorf("all namespaces: %d, %d items", code, len(list.Items))
	}
	var tg operator.Target
	if code, body := ts.do(t, http.MethodGet, "alice", api+"/namespaces/shop/targets/deployment.inventory", &tg); code != http.StatusOK {
		t.Fatalf("get: %d %s", code, body)
	}
	if tg.Spec.Kind != "deployment" || len(tg.Status.Pods) != 2 || tg.Status.Sessions != 2 {
		t.Errorf("target: %+v", tg)
	}
	if code, body := ts.do(t, http.MethodGet, "alice", api+"/namespaces/shop/targets/deployment.nope", nil); code != http.StatusNotFound {
		t.Errorf("unknown target: %d %s", code, body)
	}
	if code, _ := ts.do(t, http.MethodGet, "eve", api+"/namespaces/shop/targets/deployment.inventory", nil); code != http.StatusForbidden {
		t.Errorf("get without the get verb: %d", code)
	}
}

// TestTargetsTable is what kubectl get targets prints.
func TestTargetsTable(t *testing.T) {
	ts := startServer(t)
	req, _ := http.NewRequest(http.MethodGet, ts.base+api+"/namespaces/shop/targets", nil)
	req.Header.Set("X-Remote-User", "alice")
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	res, err := ts.client(ts.proxy).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var table metav1.Table
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&table); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range table.ColumnDefinitions {
		cols = append(cols, c.Name)
	}
	if strings.Join(cols, ",") != "Kind,Name,Ready,Status,Pods,Sessions" {
		t.Errorf("columns %v", cols)
	}
	if len(table.Rows) != 2 || fmt.Sprint(table.Rows[0].Cells) != "[deployment deployment.inventory true 2/2 ready 2 2]" {
		t.Errorf("rows %v", table.Rows)
	}
}

func TestStatus(t *testing.T) {
	ts := startServer(t)
	var st operator.OperatorStatus
	if code, body := ts.do(t, http.MethodGet, "alice", api+"/operatorstatuses/operator", &st); code != http.StatusOK {
		t.Fatalf("get: %d %s", code, body)
	}
	if st.Name != operator.StatusName || st.Status.Version != "test" || !st.Status.Healthy {
		t.Errorf("status %+v", st)
	}
	var list operator.OperatorStatusList
	if code, _ := ts.do(t, http.MethodGet, "alice", api+"/operatorstatuses", &list); code != http.StatusOK || len(list.Items) != 1 {
		t.Errorf("list: %d %+v", code, list)
	}
	if code, _ := ts.do(t, http.MethodGet, "alice", api+"/operatorstatuses/other", nil); code != http.StatusNotFound {
		t.Errorf("another name: %d", code)
	}
}

func TestLongRunningRequests(t *testing.T) {
	long := longRunning()
	for _, c := range []struct {
		info genericapirequest.RequestInfo
		want bool
	}{
		{genericapirequest.RequestInfo{IsResourceRequest: true, Verb: "create", Resource: "targets", Subresource: "portforward"}, true},
		{genericapirequest.RequestInfo{IsResourceRequest: true, Verb: "get", Resource: "targets", Subresource: "portforward"}, true},
		{genericapirequest.RequestInfo{IsResourceRequest: true, Verb: "watch", Resource: "sessions"}, true},
		{genericapirequest.RequestInfo{IsResourceRequest: true, Verb: "list", Resource: "sessions"}, false},
		{genericapirequest.RequestInfo{IsResourceRequest: true, Verb: "get", Resource: "targets"}, false},
	} {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		if got := long(req, &c.info); got != c.want {
			t.Errorf("%s %s/%s long-running = %v, want %v", c.info.Verb, c.info.Resource, c.info.Subresource, got, c.want)
		}
	}
}

// TestDiscoveryAndOpenAPI: kubectl finds the resources and their verbs,
// and the schemas (kubectl explain) describe the types' fields.
func TestDiscoveryAndOpenAPI(t *testing.T) {
	ts := startServer(t)
	var resources metav1.APIResourceList
	if code, body := ts.do(t, http.MethodGet, "eve", api, &resources); code != http.StatusOK {
		t.Fatalf("discovery: %d %s", code, body)
	}
	got := map[string]string{}
	for _, r := range resources.APIResources {
		got[r.Name] = fmt.Sprintf("%v %s %v", r.Namespaced, r.Kind, r.Verbs)
	}
	want := map[string]string{
		"targets":             "true Target [get list]",
		"targets/portforward": "true Target [create get]",
		"sessions":            "true Session [delete deletecollection get list watch]",
		"operatorstatuses":    "false OperatorStatus [get list]",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("discovery of %s: %q, want %q", name, got[name], w)
		}
	}

	var doc struct {
		Definitions map[string]struct {
			Properties map[string]struct {
				Ref  string `json:"$ref"`
				Type string `json:"type"`
			} `json:"properties"`
			GVK []map[string]string `json:"x-kubernetes-group-version-kind"`
		} `json:"definitions"`
	}
	if code, body := ts.do(t, http.MethodGet, "eve", "/openapi/v2", &doc); code != http.StatusOK {
		t.Fatalf("openapi: %d %s", code, body)
	}
	target, ok := doc.Definitions["com.github.remocal.remocal.protocol.operator.Target"]
	if !ok || len(target.GVK) != 1 || target.GVK[0]["kind"] != "Target" {
		t.Fatalf("no Target definition with its kind: %+v", target)
	}
	if target.Properties["metadata"].Ref != "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" ||
		target.Properties["kind"].Type != "string" || target.Properties["status"].Ref == "" {
		t.Errorf("Target's properties %+v", target.Properties)
	}
	if ports := doc.Definitions["com.github.remocal.remocal.protocol.operator.PortStatus"].Properties; ports["port"].Type != "integer" || ports["filter"].Ref == "" {
		t.Errorf("PortStatus's properties %+v", ports)
	}
}
