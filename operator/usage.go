package operator

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/remocal/remocal/operator/internal/backend"
	"github.com/remocal/remocal/operator/internal/broker"
	"github.com/remocal/remocal/protocol/operator"
)

// usage keeps who used which target for how long per day, and the
// latest policy denials, for the operator's status. What this replica
// recorded since its last flush is pending; stored is what the usage
// ConfigMap held when last read (usagestore.go), so a new leader or a
// restarted operator goes on from there. Both are bounded: usageDays days
// and recentDenials denials.
type usage struct {
	mu             sync.Mutex
	pending        map[usageKey]*operator.Usage
	pendingDenials []operator.Denial // newest first
	stored         usageState
	now            func() time.Time
}

type usageKey struct{ day, ns, target, user string }

func keyOf(e operator.Usage) usageKey { return usageKey{e.Day, e.Namespace, e.Target, e.User} }

const (
	usageDays     = 31
	recentDenials = 20
)

func newUsage() *usage { return &usage{pending: map[usageKey]*operator.Usage{}, now: time.Now} }

// entryIn returns the entry of m for a user's target on day, created empty.
func entryIn(m map[usageKey]*operator.Usage, day time.Time, ns, target, user string) *operator.Usage {
	k := usageKey{day.UTC().Format(time.DateOnly), ns, target, user}
	e := m[k]
	if e == nil {
		e = &operator.Usage{Day: k.day, Namespace: ns, Target: target, User: user}
		m[k] = e
	}
	return e
}

// record counts a session start, an ended session's time (split at UTC
// midnights) and policy denials.
func (u *usage) record(r broker.Record) {
	u.mu.Lock()
	defer u.mu.Unlock()
	target := targetRef(r.Target)
	switch {
	case r.Action == broker.ActionConnect && r.Decision == broker.DecisionAllow:
		entryIn(u.pending, r.Time, r.Namespace, target, r.User.Username).Sessions++
	case r.Action == broker.ActionSessionEnd:
		addTime(r.Time.Add(-r.Duration), r.Time, r.Namespace, target, r.User.Username, u.pending)
	case r.Action == broker.ActionPolicyDenial && r.Policy != nil:
		d := operator.Denial{Time: metav1.NewTime(r.Time), User: r.User.Username, Namespace: r.Namespace, Target: target,
			What: r.What, Policy: r.Policy.String(), Rule: r.Rule, Message: r.Reason}
		u.pendingDenials = append([]operator.Denial{d}, u.pendingDenials...)
		if len(u.pendingDenials) > recentDenials {
			u.pendingDenials = u.pendingDenials[:recentDenials]
		}
	}
}

// addTime adds from..to to the entries of into, a day at a time.
func addTime(from, to time.Time, ns, target, user string, into map[usageKey]*operator.Usage) {
	for from.Before(to) {
		y, m, d := from.UTC().Date()
		midnight := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
		end := midnight
		if to.Before(midnight) {
			end = to
		}
		entryIn(into, from, ns, target, user).Seconds += end.Sub(from).Seconds()
		from = end
	}
}

// merged adds the pending entries and denials to state, keeping the
// last usageDays days and the newest recentDenials denials. The caller
// holds mu.
func (u *usage) merged(state usageState) usageState {
	all := map[usageKey]*operator.Usage{}
	for _, e := range state.Usage {
		c := e
		all[keyOf(e)] = &c
	}
	for k, e := range u.pending {
		if have := all[k]; have != nil {
			have.Sessions += e.Sessions
			have.Seconds += e.Seconds
		} else {
			c := *e
			all[k] = &c
		}
	}
	oldest := u.now().UTC().AddDate(0, 0, -usageDays).Format(time.DateOnly)
	out := usageState{Usage: make([]operator.Usage, 0, len(all))}
	for k, e := range all {
		if k.day >= oldest {
			out.Usage = append(out.Usage, *e)
		}
	}
	sortUsage(out.Usage)
	out.Denials = append(slices.Clone(u.pendingDenials), state.Denials...)
	if len(out.Denials) > recentDenials {
		out.Denials = out.Denials[:recentDenials]
	}
	return out
}

func sortUsage(list []operator.Usage) {
	slices.SortFunc(list, func(a, b operator.Usage) int {
		if c := strings.Compare(b.Day, a.Day); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace+"/"+a.Target+"/"+a.User, b.Namespace+"/"+b.Target+"/"+b.User)
	})
}

// report is the usage with the live sessions' time so far, sorted by day
// (newest first), namespace, target and user, and the recent denials.
func (u *usage) report(live []operator.Session) ([]operator.Usage, []operator.Denial) {
	u.mu.Lock()
	state := u.merged(u.stored)
	u.mu.Unlock()
	all := map[usageKey]*operator.Usage{}
	for i := range state.Usage {
		all[keyOf(state.Usage[i])] = &state.Usage[i]
	}
	now := u.now()
	for _, s := range live {
		addTime(s.Status.StartTime.Time, now, s.Namespace, targetRef(s.Spec.Target), s.Spec.User.Username, all)
	}
	out := make([]operator.Usage, 0, len(all))
	for _, e := range all {
		c := *e
		c.Seconds = float64(int64(c.Seconds*10)) / 10
		out = append(out, c)
	}
	sortUsage(out)
	return out, state.Denials
}

// statusWithUsage adds sessions per target, recent denials and usage to
// the broker's status.
type statusWithUsage struct {
	inner    backend.Status
	sessions backend.Sessions
	usage    *usage
	problems func() []string
}

func (s *statusWithUsage) Status(ctx context.Context) operator.OperatorState {
	st := s.inner.Status(ctx)
	list, _ := s.sessions.List("")
	type key struct{ ns, target string }
	per := map[key]*operator.TargetSessions{}
	for _, x := range list {
		k := key{x.Namespace, targetRef(x.Spec.Target)}
		t := per[k]
		if t == nil {
			t = &operator.TargetSessions{Namespace: k.ns, Target: k.target}
			per[k] = t
		}
		t.Sessions++
		if !slices.Contains(t.Users, x.Spec.User.Username) {
			t.Users = append(t.Users, x.Spec.User.Username)
		}
	}
	for _, t := range per {
		slices.Sort(t.Users)
		st.Targets = append(st.Targets, *t)
	}
	slices.SortFunc(st.Targets, func(a, b operator.TargetSessions) int {
		return strings.Compare(a.Namespace+"/"+a.Target, b.Namespace+"/"+b.Target)
	})
	st.Usage, st.RecentDenials = s.usage.report(list)
	if s.problems != nil {
		if p := s.problems(); len(p) > 0 {
			st.Problems = append(st.Problems, p...)
			st.Healthy = false
		}
	}
	return st
}
