// Package apiserver is the operator's aggregated API server: it serves
// protocol/operator's resources on k8s.io/apiserver's generic server, with
// identity from the kube-apiserver's front-proxy headers (or a token,
// checked by TokenReview) and authorization by SubjectAccessReview, so the
// cluster's RBAC governs every call. The work itself is done behind the
// interfaces of operator/internal/backend.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/authorization/path"
	"k8s.io/apiserver/pkg/authorization/union"
	apirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericfilters "k8s.io/apiserver/pkg/server/filters"
	"k8s.io/apiserver/pkg/server/healthz"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/util/compatibility"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/protocol/operator"
)

// Options are the server's command-line options: serving, delegated
// authentication and delegated authorization, as every aggregated API
// server spells them (--secure-port, --tls-cert-file, --requestheader-*,
// --authentication-kubeconfig ...).
type Options struct {
	SecureServing  *genericoptions.SecureServingOptionsWithLoopback
	Authentication *genericoptions.DelegatingAuthenticationOptions
	Authorization  *genericoptions.DelegatingAuthorizationOptions
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	o := &Options{
		SecureServing:  genericoptions.NewSecureServingOptions().WithLoopback(),
		Authentication: genericoptions.NewDelegatingAuthenticationOptions(),
		Authorization:  genericoptions.NewDelegatingAuthorizationOptions(),
	}
	o.SecureServing.BindPort = 8443
	o.SecureServing.ServerCert.PairName = "remocal-operator"
	return o
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	errs = append(errs, o.SecureServing.Validate()...)
	errs = append(errs, o.Authentication.Validate()...)
	errs = append(errs, o.Authorization.Validate()...)
	return errors.Join(errs...)
}

// Config is what New needs.
type Config struct {
	Options *Options
	// Version is the operator's version (in its OpenAPI document).
	Version string

	Targets  backend.Targets
	Sessions backend.Sessions
	Broker   backend.Broker
	Status   backend.Status

	// Leading, when set, says whether this replica is the leader (the
	// one that serves sessions) and which replica is: a follower fails
	// its readiness check "leader", so its Service sends it nothing, and
	// refuses a session that reaches it anyway with 503, which clients
	// retry. Nil: this replica always leads.
	Leading func() (leading bool, leader string)

	// BackendAuthorizer, when set, is bound to the server's authorizer
	// by New, so a broker built before the server can ask it
	// (onConflict: override).
	BackendAuthorizer *Authorizer

	// Authorizer, when set, replaces the SubjectAccessReview behind the
	// delegated authorizer's fixed rules: a seam for tests that run the
	// server without a cluster. (Authentication has no seam: tests use
	// the real front-proxy authentication with a CA of their own.)
	Authorizer authorizer.Authorizer

	// requestTimeout and maxInFlight, when set, replace the generic
	// server's 60 s timeout and in-flight limits of requests that are not
	// long-running (tests).
	requestTimeout time.Duration
	maxInFlight    int
}

// Server is the operator's API server, ready to run.
type Server struct {
	generic *genericapiserver.GenericAPIServer
	pf      *portForward
	stop    context.CancelFunc
	// endWatches ends the watches as soon as the server starts stopping.
	endWatches context.CancelFunc
}

// New builds the server: it loads or generates the serving certificate,
// reads the cluster's front-proxy configuration (with delegated
// authentication) and installs the API.
func New(c Config) (*Server, error) {
	if c.Targets == nil || c.Sessions == nil || c.Broker == nil || c.Status == nil {
		return nil, errors.New("apiserver: Targets, Sessions, Broker and Status are all required")
	}
	o := c.Options
	if o == nil {
		o = NewOptions()
	}
	// Without a certificate given, make a self-signed one (in --cert-dir,
	// or in memory); the APIService then needs insecureSkipTLSVerify.
	if err := o.SecureServing.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, fmt.Errorf("create a self-signed serving certificate: %w", err)
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("operator options: %w", err)
	}
	scheme, codecs := newScheme()
	gc := genericapiserver.NewConfig(codecs)
	gc.EffectiveVersion = compatibility.DefaultBuildEffectiveVersion()
	gc.LongRunningFunc = longRunning()
	if c.requestTimeout > 0 {
		gc.RequestTimeout = c.requestTimeout
	}
	if c.maxInFlight > 0 {
		gc.MaxRequestsInFlight, gc.MaxMutatingRequestsInFlight = c.maxInFlight, c.maxInFlight
	}
	openAPIConfigs(scheme, gc, c.Version)
	if err := o.SecureServing.ApplyTo(&gc.SecureServing, &gc.LoopbackClientConfig); err != nil {
		return nil, fmt.Errorf("serving: %w", err)
	}
	if err := applyAuth(o, c.Authorizer, gc); err != nil {
		return nil, err
	}
	generic, err := gc.Complete(nil).New("remocal-operator", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, fmt.Errorf("build the API server: %w", err)
	}
	if err := generic.AddReadyzChecks(frontProxyReady(gc.Authentication.RequestHeaderConfig), leaderReady(c.Leading)); err != nil {
		return nil, fmt.Errorf("readiness check: %w", err)
	}
	authz := gc.Authorization.Authorizer
	if c.BackendAuthorizer != nil {
		c.BackendAuthorizer.bind(authz)
	}
	stopping, stop := context.WithCancel(context.Background())
	watching, endWatches := context.WithCancel(context.Background())
	s := &Server{generic: generic, stop: stop, endWatches: endWatches, pf: &portForward{targets: c.Targets, broker: c.Broker, stopping: stopping, leading: c.Leading}}
	info := genericapiserver.NewDefaultAPIGroupInfo(operator.Group, scheme, runtime.NewParameterCodec(scheme), codecs)
	info.NegotiatedSerializer = withoutProtobuf{codecs}
	info.VersionedResourcesStorageMap[operator.Version] = map[string]rest.Storage{
		operator.ResourceTargets: &targetStorage{targets: c.Targets, sessions: c.Sessions},
		operator.ResourceTargets + "/" + operator.SubresourcePortForward: s.pf,
		operator.ResourceSessions: &sessionStorage{sessions: c.Sessions, authz: authz, stopping: watching},
		operator.ResourceStatuses: &statusStorage{status: c.Status},
	}
	if err := generic.InstallAPIGroup(&info); err != nil {
		stop()
		endWatches()
		return nil, fmt.Errorf("install the %s API: %w", operator.Group, err)
	}
	return s, nil
}

// applyAuth sets up delegated authentication and authorization (or the
// test authorizer in place of the SubjectAccessReview).
func applyAuth(o *Options, testAuthz authorizer.Authorizer, gc *genericapiserver.Config) error {
	if err := o.Authentication.ApplyTo(&gc.Authentication, gc.SecureServing, gc.OpenAPIConfig); err != nil {
		return fmt.Errorf("delegated authentication (may the operator read configmap kube-system/extension-apiserver-authentication and create tokenreviews?): %w", err)
	}
	gc.Authentication.Authenticator = anonymousOnlyForHealth{gc.Authentication.Authenticator}
	if testAuthz == nil {
		if err := o.Authorization.ApplyTo(&gc.Authorization); err != nil {
			return fmt.Errorf("delegated authorization: %w", err)
		}
		return nil
	}
	// What the delegated authorizer puts in front of its
	// SubjectAccessReview: the health paths, system:masters.
	paths, err := path.NewAuthorizer(o.Authorization.AlwaysAllowPaths)
	if err != nil {
		return fmt.Errorf("authorization paths: %w", err)
	}
	gc.Authorization.Authorizer = union.New(paths, authorizerfactory.NewPrivilegedGroups(o.Authorization.AlwaysAllowGroups...), testAuthz)
	return nil
}

// frontProxyReady is a readiness check: the front proxy's CA is read from
// the cluster's ConfigMap by an informer, some time after the server
// listens; until then every request the kube-apiserver proxies would be
// refused as unauthenticated, so the operator is not ready.
func frontProxyReady(rh *authenticatorfactory.RequestHeaderConfig) healthz.HealthChecker {
	return healthz.NamedCheck("front-proxy-ca", func(*http.Request) error {
		if rh == nil || rh.CAContentProvider == nil {
			return nil // not configured: no front proxy to wait for
		}
		if len(rh.CAContentProvider.CurrentCABundleContent()) == 0 {
			return errors.New("the front proxy's CA (requestheader-client-ca-file) is not loaded yet")
		}
		return nil
	})
}

// leaderReady is the readiness check "leader": only the leader is ready,
// so the operator's Service (and through it the APIService) routes to the
// replica that serves sessions. A follower still serves its API (its
// /readyz and /livez, and a 503 to any session that reaches it): once it
// becomes the leader it is ready at the next probe.
func leaderReady(leading func() (bool, string)) healthz.HealthChecker {
	return healthz.NamedCheck("leader", func(*http.Request) error {
		if leading == nil {
			return nil
		}
		if ok, leader := leading(); !ok {
			return errNotLeader(leader)
		}
		return nil
	})
}

// errNotLeader says why a follower does not serve sessions.
func errNotLeader(leader string) error {
	if leader == "" {
		return errors.New("this replica is not the leader, and no replica leads at the moment (an election is under way); retry in a few seconds")
	}
	return fmt.Errorf("this replica is not the leader (%s is); retry in a few seconds, the operator's Service routes to the leader", leader)
}

// Run serves until ctx ends, then shuts down gracefully. Sessions end
// with the server: Run returns when every one has.
func (s *Server) Run(ctx context.Context) error {
	defer s.pf.running.Wait()
	defer s.stop()
	defer s.endWatches()
	stopWatches := context.AfterFunc(ctx, s.endWatches)
	defer stopWatches()
	return s.generic.PrepareRun().RunWithContext(ctx)
}

// longRunning: watches, and the session stream, which lives as long as
// the session (as the kube-apiserver treats pods/portforward: no request
// timeout, no in-flight seat held).
func longRunning() apirequest.LongRunningRequestCheck {
	return genericfilters.BasicLongRunningRequestCheck(sets.NewString("watch"), sets.NewString(operator.SubresourcePortForward))
}

// newScheme registers the API's types and the meta types the generic
// server encodes (Status, Table, WatchEvent, the options of every verb).
// The types have one version and no internal one: the server only reads
// and deletes, so nothing is ever converted.
func newScheme() (*runtime.Scheme, serializer.CodecFactory) {
	scheme := runtime.NewScheme()
	utilruntimeMust(operator.AddToScheme(scheme))
	utilruntimeMust(metav1.AddMetaToScheme(scheme))
	// The generic server decodes query parameters and DeleteOptions
	// as core "v1" objects.
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	unversioned := schema.GroupVersion{Group: "", Version: "v1"}
	scheme.AddUnversionedTypes(unversioned, &metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{},
		&metav1.APIGroup{}, &metav1.APIResourceList{})
	return scheme, serializer.NewCodecFactory(scheme)
}

func utilruntimeMust(err error) {
	if err != nil {
		panic(err)
	}
}
