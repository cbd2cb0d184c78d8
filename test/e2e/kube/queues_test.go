package kube

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/remocal/remocal/test/cluster"
	"github.com/remocal/remocal/test/poll"
	"github.com/remocal/remocal/test/queueapp/queuerecord"
)

// The queue-splitting tests' parts run in the cluster (issue 16): Redis
// and NATS JetStream from the harness's images, test/queueapp producing as
// a Job and consuming as a Deployment. Every message reaches the deployed
// consumer exactly once; repointed by its queue variables' values (as the
// operator will), its new pods consume the other queue and leave the first
// one's new messages alone.
func TestQueueAppInCluster(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	results, err := f.c.DeployRedis(ctx, f.ns, "results", version)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"redis", "nats"} {
		t.Run(kind, func(t *testing.T) {
			f := f.with(t)
			var broker cluster.Broker
			var err error
			first := map[string]string{"ORDERS_STREAM": "orders", "ORDERS_GROUP": "workers"}
			second := map[string]string{"ORDERS_STREAM": "orders.second", "ORDERS_GROUP": "workers"}
			if kind == "redis" {
				broker, err = f.c.DeployRedis(ctx, f.ns, "redis", version)
			} else {
				broker, err = f.c.DeployNATS(ctx, f.ns, "nats", version)
				first = map[string]string{"ORDERS_STREAM": "ORDERS", "ORDERS_GROUP": "workers", "ORDERS_SUBJECT": "orders.new"}
				second = map[string]string{"ORDERS_STREAM": "SECOND", "ORDERS_GROUP": "second", "ORDERS_SUBJECT": "second.new"}
			}
			if err != nil {
				t.Fatal(err)
			}
			// The records of the redis subtest stay; nats's numbers follow.
			base := 0
			if kind == "nats" {
				base = 1000
			}
			app := cluster.QueueApp{Name: kind + "-worker", Tag: version, Broker: broker, Results: results, Who: kind, Env: first}
			if err := f.c.DeployQueueApp(ctx, f.ns, app); err != nil {
				t.Fatal(err)
			}
			produce := func(name string, env map[string]string, start, count int) {
				t.Helper()
				p := cluster.QueueApp{Name: name, Tag: version, Produce: true, Broker: broker, Env: env,
					Args: []string{"-start", fmt.Sprint(start), "-count", fmt.Sprint(count), "-rate", "500"}}
				if err := f.c.DeployQueueApp(ctx, f.ns, p); err != nil {
					t.Fatal(err)
				}
				if err := f.c.WaitJob(ctx, f.ns, name, 2*time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			produce(kind+"-produce-1", first, base+1, 300)
			awaitExactlyOnce(t, f.c, results, kind, base+1, base+300)

			// Repoint: the values change, the program does not.
			args := []string{"set", "env", "deployment/" + app.Name}
			for k, v := range second {
				args = append(args, k+"="+v)
			}
			f.kubectl(args...)
			f.rollout("deployment/" + app.Name)
			produce(kind+"-produce-old", first, base+501, 50)
			produce(kind+"-produce-2", second, base+301, 200)
			awaitExactlyOnce(t, f.c, results, kind, base+1, base+500)
			if left := backlog(t, f.c, broker, first); left != 50 {
				t.Errorf("the first queue holds %d unconsumed messages after the repoint, want the 50 produced to it since", left)
			}
		})
	}
}

// awaitExactlyOnce waits until who has consumed first..last, then checks
// each number once.
func awaitExactlyOnce(t *testing.T, c *cluster.Cluster, results cluster.Broker, who string, first, last int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var tally queuerecord.Tally
	err := poll.Until(ctx, 2*time.Minute, func() error {
		recs, err := c.QueueRecords(ctx, results)
		if err != nil {
			return err
		}
		var mine []queuerecord.Record
		for _, r := range recs {
			if r.Who == who {
				mine = append(mine, r)
			}
		}
		tally = queuerecord.Count(mine)
		if len(mine) < last-first+1 {
			return fmt.Errorf("%d of %d messages consumed", len(mine), last-first+1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tally.ExactlyOnce(first, last, func(int) string { return who }); err != nil {
		t.Fatal(err)
	}
}

// backlog is how many messages of the queue env names the group has not
// yet been handed (Redis: the group's lag; JetStream: the durable's
// pending), read through a port forward to the broker.
func backlog(t *testing.T, c *cluster.Cluster, b cluster.Broker, env map[string]string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr, stop, err := c.PortForward(ctx, b.Namespace, "svc/"+b.Name, b.Port)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	stream, group := env["ORDERS_STREAM"], env["ORDERS_GROUP"]
	if b.Kind == "redis" {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		groups, err := rdb.XInfoGroups(ctx, stream).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range groups {
			if g.Name == group {
				return int(g.Lag + g.Pending)
			}
		}
		t.Fatalf("no group %s on %s", group, stream)
	}
	// The port forward is the only way in: no reconnecting elsewhere.
	nc, err := nats.Connect("nats://"+addr, nats.NoReconnect(), nats.Timeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, stream, group)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return int(info.NumPending) + info.NumAckPending
}
