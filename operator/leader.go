package operator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderElection configures the election among the operator's replicas:
// a coordination.k8s.io Lease in the operator's namespace. Only the
// leader serves sessions (the others are not ready, see
// apiserver.Config.Leading); a replica that stops (its pod is deleted)
// releases the Lease at once, so a follower takes over within RetryPeriod
// rather than LeaseDuration.
type LeaderElection struct {
	// Enabled: elect; without it this replica always leads (one
	// replica, or development with --kubeconfig).
	Enabled bool
	// LeaseName names the Lease in the operator's namespace.
	LeaseName string
	// LeaseDuration is how long followers wait after the leader's last
	// renewal before taking over a Lease it did not release (its node
	// died); RenewDeadline how long the leader keeps trying to renew
	// before it gives up leading; RetryPeriod how often every replica
	// tries.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// DefaultLeaderElection is client-go's usual timing: a crashed leader is
// replaced within 15 s, a stopping one within 2 s.
func DefaultLeaderElection() LeaderElection {
	return LeaderElection{Enabled: true, LeaseName: "remocal-operator",
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
}

// AddFlags binds the election's flags, named as Kubernetes' own
// components name theirs.
func (l *LeaderElection) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&l.Enabled, "leader-elect", l.Enabled, "elect a leader among the operator's replicas with a Lease in its namespace; only the leader serves sessions (false: this replica always serves)")
	fs.StringVar(&l.LeaseName, "leader-elect-resource-name", l.LeaseName, "name of the leader election Lease in the operator's namespace")
	fs.DurationVar(&l.LeaseDuration, "leader-elect-lease-duration", l.LeaseDuration, "how long followers wait before taking over from a leader that stopped renewing without releasing the Lease")
	fs.DurationVar(&l.RenewDeadline, "leader-elect-renew-deadline", l.RenewDeadline, "how long the leader tries to renew the Lease before it stops leading (and exits)")
	fs.DurationVar(&l.RetryPeriod, "leader-elect-retry-period", l.RetryPeriod, "how often the replicas try to acquire or renew the Lease")
}

func (l *LeaderElection) validate() error {
	if !l.Enabled {
		return nil
	}
	if l.LeaseName == "" {
		return errors.New("--leader-elect-resource-name is empty; name the Lease (the chart uses remocal-operator)")
	}
	if !(l.LeaseDuration > l.RenewDeadline && l.RenewDeadline > l.RetryPeriod && l.RetryPeriod > 0) {
		return fmt.Errorf("leader election needs --leader-elect-lease-duration (%s) > --leader-elect-renew-deadline (%s) > --leader-elect-retry-period (%s) > 0",
			l.LeaseDuration, l.RenewDeadline, l.RetryPeriod)
	}
	return nil
}

// errLostLease ends the operator when it stops leading while it runs (it
// could not renew the Lease: the API server was unreachable for the renew
// deadline). Another replica may lead by now; this one exits and its
// restart stands by as a follower, with no sessions of its own left over.
var errLostLease = errors.New("this replica lost the leader Lease (it could not renew it in time); exiting so that it restarts as a follower")

// elector runs the election and answers who leads.
type elector struct {
	le      *leaderelection.LeaderElector
	self    string
	log     *slog.Logger
	leading atomic.Bool
	// ended is set once the operator is stopping: it leads no more,
	// whatever the Lease still says.
	ended atomic.Bool
	// onLost is called when leadership is lost while the operator runs.
	onLost func()
	// led is set once this replica has led.
	led atomic.Bool

	wg sync.WaitGroup
}

// newElector prepares the election of self.
func newElector(l LeaderElection, cs kubernetes.Interface, ns, self string, log *slog.Logger, onLost func()) (*elector, error) {
	e := &elector{self: self, log: log, onLost: onLost}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: l.LeaseName},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: self},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: l.LeaseDuration, RenewDeadline: l.RenewDeadline, RetryPeriod: l.RetryPeriod,
		// The Lease is released only after the sessions ended (run's
		// context ends after the server stopped), so a stopping
		// leader hands over at once and never overlaps a new one.
		ReleaseOnCancel: true,
		Name:            l.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				e.led.Store(true)
				e.leading.Store(!e.ended.Load())
				log.Info("this replica leads: serving sessions", "lease", ns+"/"+l.LeaseName, "self", self)
			},
			OnStoppedLeading: e.stopped,
			OnNewLeader: func(id string) {
				if id != self {
					log.Info("another replica leads; standing by", "leader", id, "self", self)
				}
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("leader election: %w", err)
	}
	e.le = le
	return e, nil
}

// stopped is called whenever the election loop ends.
func (e *elector) stopped() {
	was := e.leading.Swap(false)
	if e.ended.Load() || !e.led.Load() {
		return
	}
	if was {
		e.log.Error("lost the leader Lease")
	}
	e.onLost()
}

// run runs the election until ctx ends, on a goroutine wait joins.
func (e *elector) run(ctx context.Context) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.le.Run(ctx)
	}()
}

// end stops leading at once (no new sessions) while the operator stops.
func (e *elector) end() {
	e.ended.Store(true)
	e.leading.Store(false)
}

// wait waits for the election loop (and the Lease's release).
func (e *elector) wait() { e.wg.Wait() }

// Leading is apiserver.Config.Leading.
func (e *elector) Leading() (bool, string) {
	return e.leading.Load(), e.le.GetLeader()
}

// Leader names the replica that leads, for the operator's status.
func (e *elector) Leader() string { return e.le.GetLeader() }
