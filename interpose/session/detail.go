package session

import (
	"sort"

	"github.com/remocal/remocal/interpose/internal/supervisor"
)

// Detail is what the session's supervisors report, added up.
type Detail struct {
	// Supervised is Supervised().
	Supervised int
	// Stats adds up the counters of every supervisor.
	Stats         supervisor.Stats
	Subscriptions []supervisor.SubscriptionInfo
	// Processes are the running processes the supervisors have seen.
	Processes []supervisor.ProcessInfo
}

// Detail collects counters, subscriptions and processes across the
// session's supervisors.
func (s *Session) Detail() Detail {
	s.mu.Lock()
	sups := append([]*supervisor.Supervisor(nil), s.supervisors...)
	d := Detail{Supervised: len(s.keepers)}
	s.mu.Unlock()
	d.Stats.Remote = map[string]uint64{}
	d.Subscriptions = []supervisor.SubscriptionInfo{}
	d.Processes = []supervisor.ProcessInfo{}
	seen := map[int]bool{}
	for _, sup := range sups {
		st := sup.Snapshot()
		d.Stats.Notified += st.Notified
		d.Stats.Continued += st.Continued
		d.Stats.Delivered += st.Delivered
		for k, v := range st.Remote {
			d.Stats.Remote[k] += v
		}
		d.Subscriptions = append(d.Subscriptions, sup.Subscriptions()...)
		for _, p := range sup.Processes() {
			// A process is under one supervisor; a recycled PID could
			// show up under two.
			if !seen[p.PID] {
				seen[p.PID] = true
				d.Processes = append(d.Processes, p)
			}
		}
	}
	sort.Slice(d.Subscriptions, func(i, j int) bool { return d.Subscriptions[i].LocalPort < d.Subscriptions[j].LocalPort })
	sort.Slice(d.Processes, func(i, j int) bool { return d.Processes[i].PID < d.Processes[j].PID })
	return d
}
