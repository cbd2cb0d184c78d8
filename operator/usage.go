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
// latest policy denials, for the operator's status. It lives in the
// leader's memory: bounded to usageDays days and recentDenials denials.
type usage struct {
	mu      sync.Mutex
	days    map[usageKey]*operator.Usage
	denials []operator.Denial // newest first
	now     func() time.Time
}

type usageKey struct{ day, ns, target, user string }

const (
	usageDays     = 31
	recentDenials = 20
)

func newUsage() *usage { return &usage{days: map[usageKey]*operator.Usage{}, now: time.Now} }

func (u *usage) entry(day time.Time, ns, target, user string) *operator.Usage {
	k := usageKey{day.UTC().Format(time.DateOnly), ns, target, user}
	e := u.days[k]
	if e == nil {
		e = &operator.Usage{Day: k.day, Namespace: ns, Target: target, User: user}
		u.days[k] = e
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
		u.entry(r.Time, r.Namespace, target, r.User.Username).Sessions++
	case r.Action == broker.ActionSessionEnd:
		u.addTime(r.Time.Add(-r.Duration), r.Time, r.Namespace, target, r.User.Username, u.days)
	case r.Action == broker.ActionPolicyDenial && r.Policy != nil:
		d := operator.Denial{Time: metav1.NewTime(r.Time), User: r.User.Username, Namespace: r.Namespace, Target: target,
			What: r.What, Policy: r.Policy.String(), Rule: r.Rule, Message: r.Reason}
		u.denials = append([]operator.Denial{d}, u.denials...)
		if len(u.denials) > recentDenials {
			u.denials = u.denials[:recentDenials]
		}
	}
	u.prune()
}

// addTime adds from..to to the entries of into, a day at a time.
func (u *usage) addTime(from, to time.Time, ns, target, user string, into map[usageKey]*operator.Usage) {
	saved := u.days
	u.days = into
	defer func() { u.days = saved }()
	for from.Before(to) {
		y, m, d := from.UTC().Date()
		midnight := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
		end := midnight
		if to.Before(midnight) {
			end = to
		}
		u.entry(from, ns, target, user).Seconds += end.Sub(from).Seconds()
		from = end
	}
}

func (u *usage) prune() {
	oldest := u.now().UTC().AddDate(0, 0, -usageDays).Format(time.DateOnly)
	for k := range u.days {
		if k.day < oldest {
			delete(u.days, k)
		}
	}
}

// report is the usage with the live sessions' time so far, sorted by day
// (newest first), namespace, target and user, and the recent denials.
func (u *usage) report(live []operator.Session) ([]operator.Usage, []operator.Denial) {
	u.mu.Lock()
	defer u.mu.Unlock()
	all := map[usageKey]*operator.Usage{}
	for k, e := range u.days {
		c := *e
		all[k] = &c
	}
	now := u.now()
	for _, s := range live {
		u.addTime(s.Status.StartTime.Time, now, s.Namespace, targetRef(s.Spec.Target), s.Spec.User.Username, all)
	}
	out := make([]operator.Usage, 0, len(all))
	for _, e := range all {
		e.Seconds = float64(int64(e.Seconds*10)) / 10
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b operator.Usage) int {
		if c := strings.Compare(b.Day, a.Day); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace+"/"+a.Target+"/"+a.User, b.Namespace+"/"+b.Target+"/"+b.User)
	})
	return out, slices.Clone(u.denials)
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
