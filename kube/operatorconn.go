package kube

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/interpose/connect"
	"github.com/remocal/remocal/protocol/config"
	"github.com/remocal/remocal/protocol/operator"
	"github.com/remocal/remocal/protocol/wire"
)

// OperatorConnector reaches a target through the cluster's operator: a
// session stream on targets/KIND.NAME/portforward, through the
// kube-apiserver with the user's own credentials, which the operator
// brokers to the target's agents. The user needs the operator's RBAC only
// (create targets/portforward), no rights on pods or Jobs.
type OperatorConnector struct {
	Ref   string // "deployment/api", "pod/x/container/y"
	Flags Flags
	// Progress receives one-line messages for the user.
	Progress func(string)
	// Env, if set, is the loaded cluster connection (else Connect loads
	// it from Flags).
	Env *Env

	mu      sync.Mutex
	env     *Env
	ns      string
	target  string
	query   url.Values
	session string // the operator's name for the session, from its welcome
	note    string
}

// OperatorHeartbeat is how often a client pings the operator, well
// within any lease TTL an operator would be configured with.
const OperatorHeartbeat = 5 * time.Second

// ErrOperatorCannotServe says a target reference has no operator target:
// label selectors and targetless sessions are reached directly.
var ErrOperatorCannotServe = errors.New("the operator does not serve this kind of target")

// operatorTarget maps a reference to the operator's target name and query.
func operatorTarget(ref string) (string, url.Values, error) {
	t, err := config.ParseTarget(ref)
	if err != nil {
		return "", nil, fmt.Errorf("target %v", err)
	}
	if !isWorkload(t.Kind) {
		return "", nil, fmt.Errorf("%w: %s (use a workload such as deployment/NAME, or --operator false)", ErrOperatorCannotServe, ref)
	}
	q := url.Values{}
	if t.Container != "" {
		q.Set("container", t.Container)
	}
	return operator.TargetName(string(t.Kind), t.Name), q, nil
}

func isWorkload(k config.TargetKind) bool {
	for _, w := range config.WorkloadKinds {
		if k == w {
			return true
		}
	}
	return false
}

// Describe names the target and, once connected, the operator's session.
func (o *OperatorConnector) Describe() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.session != "" {
		return fmt.Sprintf("%s (operator session %s/%s)", o.Ref, o.ns, o.session)
	}
	return o.Ref
}

// Note says which pod the session's environment, files and network come
// from and why, once connected.
func (o *OperatorConnector) Note() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.note
}

// Peer names the operator and the session, for messages about the
// connection (connect.Peer).
func (o *OperatorConnector) Peer() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.session != "" {
		return "the operator (session " + o.session + ")"
	}
	return "the operator"
}

// Session is the operator's name for the session, once connected.
func (o *OperatorConnector) Session() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.session
}

func (o *OperatorConnector) progress(msg string) {
	if o.Progress != nil {
		o.Progress(msg)
	}
}

// Connect opens a new session on the target.
func (o *OperatorConnector) Connect(ctx context.Context, opts agentclient.Options) (*agentclient.Client, func(), error) {
	target, q, err := operatorTarget(o.Ref)
	if err != nil {
		return nil, nil, err
	}
	env := o.Env
	if env == nil {
		if env, err = Load(o.Flags); err != nil {
			return nil, nil, err
		}
	}
	o.mu.Lock()
	o.env, o.ns, o.target, o.query = env, env.Namespace, target, q
	o.mu.Unlock()
	// The operator names sessions itself; a name it does not know would
	// ask it to resume a session that does not exist.
	opts.Session = ""
	c, err := o.dial(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	w := c.Welcome()
	if op := w.Operator; op != nil {
		msg := fmt.Sprintf("connected through the operator: session %s on %s", op.Session, strings.Join(op.Pods, ", "))
		if op.Primary != "" {
			msg += fmt.Sprintf("; environment, files and network from %s", op.Primary)
			if op.PrimaryReason != "" {
				msg += " (" + op.PrimaryReason + ")"
			}
		}
		o.progress(msg)
	}
	return c, func() { c.Close() }, nil
}

// dial opens the stream and shakes hands with the operator.
func (o *OperatorConnector) dial(ctx context.Context, opts agentclient.Options) (*agentclient.Client, error) {
	o.mu.Lock()
	env, ns, target, q := o.env, o.ns, o.target, o.query
	o.mu.Unlock()
	conn, err := DialOperator(ctx, env, ns, target, q)
	if err != nil {
		return nil, err
	}
	// The kube-apiserver's TLS and the APIService authenticated the
	// operator; it proves no agent key.
	opts.Key, opts.TransportAuthenticated = nil, true
	// The operator keeps the session's lease (and its locks) alive by
	// the client's heartbeats.
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = OperatorHeartbeat
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	if opts.Tool == "" {
		opts.Tool = "remocal"
	}
	c, err := agentclient.New(ctx, conn, opts)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake with the operator for target %s in namespace %s: %w", target, ns, err)
	}
	if op := c.Welcome().Operator; op != nil {
		o.mu.Lock()
		o.session = op.Session
		o.note = ""
		if op.Primary != "" {
			o.note = "environment, files and network from pod " + op.Primary
			if op.PrimaryReason != "" {
				o.note += " (" + op.PrimaryReason + ")"
			}
		}
		o.mu.Unlock()
	}
	return c, nil
}

// Redial resumes the session after the connection dropped: the hello
// names the operator's session, which keeps its locks for the lease TTL.
// It retries for up to patience, except when the cluster refuses (the
// user lost the permission, the target was deleted) or the operator says
// the session ended.
func (o *OperatorConnector) Redial(ctx context.Context, opts agentclient.Options, patience time.Duration) (*agentclient.Client, func(), error) {
	o.mu.Lock()
	env, session := o.env, o.session
	o.mu.Unlock()
	if env == nil {
		return nil, nil, errors.New("redial before connect")
	}
	opts.Session = session
	deadline := time.Now().Add(patience)
	backoff := 100 * time.Millisecond
	for {
		c, err := o.dial(ctx, opts)
		if err == nil {
			return c, func() { c.Close() }, nil
		}
		var refused *OperatorRefusedError
		if errors.As(err, &refused) && !apierrors.IsServiceUnavailable(refused.Status) && !apierrors.IsInternalError(refused.Status) {
			return nil, nil, err
		}
		if errors.Is(err, &wire.Error{Code: wire.CodeNotFound}) {
			// The operator ended the session (a kill) as the connection
			// dropped: it will not come back.
			return nil, nil, err
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("cannot resume operator session %s within %v: %w", session, patience, err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(jitter(backoff)): // retry backoff, not synchronisation
		}
		backoff = min(2*backoff, redialMaxBackoff)
	}
}

// redialMaxBackoff caps the pause between tries to resume a session. A
// leader handover makes the operator unavailable for 2–4 s (the follower
// takes the Lease, becomes ready, the APIService follows; docs/operator.md,
// High availability): a longer pause would add up to itself to the
// session's interruption.
const redialMaxBackoff = time.Second

// jitter spreads d over [0.75d, 1.25d): the clients of a stopping leader
// all retry at once otherwise.
func jitter(d time.Duration) time.Duration {
	return d*3/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// choosingConnector decides between the operator and the direct path on
// its first Connect, when a context for the discovery request exists.
type choosingConnector struct {
	ref      string
	mode     config.OperatorMode
	flags    Flags
	direct   *Connector
	progress func(string)
	// detect is DetectOperator; a seam for tests.
	detect func(context.Context, *Env) error

	mu     sync.Mutex
	chosen connect.Connector
}

func (c *choosingConnector) current() connect.Connector {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.chosen
}

// Describe names the target, through the chosen path once chosen.
func (c *choosingConnector) Describe() string {
	if k := c.current(); k != nil {
		return k.Describe()
	}
	return c.ref
}

// Note is the chosen connector's note.
func (c *choosingConnector) Note() string {
	if n, ok := c.current().(interface{ Note() string }); ok {
		return n.Note()
	}
	return ""
}

// Connect chooses, then connects.
func (c *choosingConnector) Connect(ctx context.Context, opts agentclient.Options) (*agentclient.Client, func(), error) {
	k, err := c.choose(ctx)
	if err != nil {
		return nil, nil, err
	}
	return k.Connect(ctx, opts)
}

// Peer is the chosen connector's (connect.Peer).
func (c *choosingConnector) Peer() string {
	if p, ok := c.current().(connect.Peer); ok {
		return p.Peer()
	}
	return ""
}

// Redial goes the way Connect went.
func (c *choosingConnector) Redial(ctx context.Context, opts agentclient.Options, patience time.Duration) (*agentclient.Client, func(), error) {
	r, ok := c.current().(connect.Redialer)
	if !ok {
		return nil, nil, errors.New("redial before connect")
	}
	return r.Redial(ctx, opts, patience)
}

// choose asks the cluster whether the operator is there, as the mode says.
func (c *choosingConnector) choose(ctx context.Context) (connect.Connector, error) {
	if k := c.current(); k != nil {
		return k, nil
	}
	k, err := c.decide(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.chosen = k
	c.mu.Unlock()
	return k, nil
}

func (c *choosingConnector) decide(ctx context.Context) (connect.Connector, error) {
	_, _, refErr := operatorTarget(c.ref)
	if c.mode == config.OperatorAuto && errors.Is(refErr, ErrOperatorCannotServe) {
		return c.direct, nil
	}
	if refErr != nil {
		return nil, fmt.Errorf("operator: true: %w", refErr)
	}
	env, err := Load(c.flags)
	if err != nil {
		return nil, err
	}
	err = c.detect(ctx, env)
	var oe *OperatorError
	switch {
	case err == nil:
		return &OperatorConnector{Ref: c.ref, Flags: c.flags, Env: env, Progress: c.progress}, nil
	case c.mode == config.OperatorAuto && errors.As(err, &oe):
		c.progress(noOperatorNote(oe) + "; connecting directly")
		return c.direct, nil
	case errors.As(err, &oe):
		return nil, fmt.Errorf("operator: true, but %w; or set operator to auto or false (--operator)", oe)
	}
	return nil, err
}

// noOperatorNote is the one line auto prints before going direct.
func noOperatorNote(e *OperatorError) string {
	if e.Absent {
		return fmt.Sprintf("no operator in this cluster (context %q, API %s not registered)", e.Context, OperatorAPIPath)
	}
	why := fmt.Sprintf("HTTP %d", e.Status)
	if e.Message != "" {
		why += ": " + e.Message
	}
	return fmt.Sprintf("the operator in this cluster (context %q) is unavailable (%s)", e.Context, why)
}

var _ connect.Connector = (*OperatorConnector)(nil)
var _ connect.Redialer = (*OperatorConnector)(nil)
var _ connect.Redialer = (*choosingConnector)(nil)
var _ connect.Peer = (*choosingConnector)(nil)
var _ connect.Peer = (*OperatorConnector)(nil)
