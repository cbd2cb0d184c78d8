package apiserver

import (
	"net/http"
	"strings"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
)

// healthPaths are served to anybody: the kubelet probes them without
// credentials (the delegated authorizer lets them through too).
var healthPaths = []string{"/healthz", "/readyz", "/livez"}

// anonymousOnlyForHealth refuses anonymous callers except on the health
// paths, so the API is callable only with a front-proxy identity or a
// token the cluster vouches for. (The delegated authenticator always
// admits anonymous callers, leaving them to authorization; a cluster whose
// RBAC grants system:anonymous or system:unauthenticated something would
// otherwise open the operator's API to the network.)
type anonymousOnlyForHealth struct {
	authenticator.Request
}

func (a anonymousOnlyForHealth) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	res, ok, err := a.Request.AuthenticateRequest(req)
	if !ok || err != nil || res.User.GetName() != user.Anonymous || isHealthPath(req.URL.Path) {
		return res, ok, err
	}
	return nil, false, nil
}

func isHealthPath(p string) bool {
	for _, h := range healthPaths {
		if p == h || strings.HasPrefix(p, h+"/") {
			return true
		}
	}
	return false
}
