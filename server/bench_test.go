package server_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/remocal/remocal/protocol/daemon"
	"github.com/remocal/remocal/server/daemonclient"
	"github.com/remocal/remocal/server/internal/targets"
)

// BenchmarkTargetsList measures remocal/targets end to end over the socket
// with a provider cache of 5000 targets (a large cluster), filtered to one
// namespace.
func BenchmarkTargetsList(b *testing.B) {
	var list []daemon.Target
	for i := range 5000 {
		ns := fmt.Sprintf("team-%02d", i%50)
		list = append(list, daemon.Target{Ref: fmt.Sprintf("deployment/svc-%04d", i), Kind: "deployment",
			Name: fmt.Sprintf("svc-%04d", i), Namespace: ns, Provider: "bench", Ready: true})
	}
	d := startDaemon(b, daemonOpts{targets: targets.NewSet(&targets.Static{ProviderName: "bench", List: list})})
	c := connect(b, d.socket, daemonclient.Options{})
	ctx := testCtx(b)
	for _, filter := range []daemon.TargetsParams{{Namespace: "team-07"}, {}} {
		name := "all-5000"
		if filter.Namespace != "" {
			name = "one-namespace-100"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				var res daemon.TargetsResult
				if err := c.Call(ctx, daemon.MethodTargets, filter, &res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNotificationFanout measures how long a notification takes to
// reach every one of several connected clients.
func BenchmarkNotificationFanout(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("clients-%d", n), func(b *testing.B) {
			prov := &targets.Static{ProviderName: "bench"}
			d := startDaemon(b, daemonOpts{targets: targets.NewSet(prov)})
			var clients []*daemonclient.Client
			for range n {
				clients = append(clients, connect(b, d.socket, daemonclient.Options{}))
			}
			b.ResetTimer()
			for b.Loop() {
				d.srv.Broadcast(daemon.NotifyTargetsChanged, daemon.TargetsChanged{Provider: "bench"})
				var wg sync.WaitGroup
				for _, c := range clients {
					wg.Go(func() { <-c.Notifications() })
				}
				wg.Wait()
			}
		})
	}
}
