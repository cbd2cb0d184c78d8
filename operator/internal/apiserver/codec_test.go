package apiserver

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/remocal/remocal/protocol/operator"
)

// TestProtobufClientsGetJSON: the API's types have no protobuf encoding.
// Clients that prefer protobuf and accept JSON too (the namespace
// controller emptying a namespace, the garbage collector) must get JSON,
// not a 500 that leaves the namespace Terminating while the operator is
// installed.
func TestProtobufClientsGetJSON(t *testing.T) {
	ts := startServer(t)
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, api + "/namespaces/shop/sessions"},
		{http.MethodGet, api + "/namespaces/shop/targets"},
		{http.MethodGet, api + "/operatorstatuses"},
		{http.MethodDelete, api + "/namespaces/shop/sessions"},
	} {
		req, _ := http.NewRequest(tc.method, ts.base+tc.path, nil)
		req.Header.Set("X-Remote-User", "alice")
		req.Header.Set("Accept", "application/vnd.kubernetes.protobuf, application/json")
		res, err := ts.client(ts.proxy).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s preferring protobuf: %d %s: %s", tc.method, tc.path, res.StatusCode, res.Header.Get("Content-Type"), body)
			continue
		}
		var list operator.SessionList // any list: kind and items
		if err := json.Unmarshal(body, &list); err != nil || !strings.HasSuffix(list.Kind, "List") {
			t.Errorf("%s %s: not a JSON list (%v): %s", tc.method, tc.path, err, body)
		}
	}
}
