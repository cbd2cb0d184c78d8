package splits

import (
	"errors"
	"strings"
	"testing"

	"github.com/remocal/remocal/operator/internal/queuesplit"
	qs "github.com/remocal/remocal/protocol/queuesplit"
	"github.com/remocal/remocal/protocol/wire"
)

func consumer(queues ...string) *qs.RemocalQueueConsumer {
	c := &qs.RemocalQueueConsumer{Spec: qs.ConsumerSpec{Workload: qs.Workload{Kind: "deployment", Name: "orders-worker"}}}
	c.Namespace, c.Name = "shop", "orders-worker"
	for _, q := range queues {
		c.Spec.Queues = append(c.Spec.Queues, qs.Queue{Name: q,
			Broker: qs.Broker{Kind: qs.BrokerRedisStreams, Address: "redis.shop.svc:6379"},
			Env:    qs.QueueEnv{Stream: "ORDERS_STREAM", Group: "ORDERS_GROUP"}})
	}
	return c
}

// The queue a split names, or the only one; otherwise an error with the
// code the client shows and the queues there are.
func TestPickQueue(t *testing.T) {
	for _, c := range []struct {
		name   string
		rqc    *qs.RemocalQueueConsumer
		queue  string
		want   string
		code   wire.Code
		hasMsg string
	}{
		{"the only one", consumer("orders"), "", "orders", "", ""},
		{"named", consumer("orders", "invoices"), "invoices", "invoices", "", ""},
		{"ambiguous", consumer("orders", "invoices"), "", "", wire.CodeInvalid, "[orders invoices]"},
		{"unknown", consumer("orders"), "refunds", "", wire.CodeNotFound, `no queue "refunds"`},
		{"invalid consumer", consumer(), "", "", wire.CodeInvalid, "spec.queues"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := pickQueue(c.rqc, c.queue)
			if c.code == "" {
				if err != nil || q.Name != c.want {
					t.Fatalf("got %q, %v; want %q", q.Name, err, c.want)
				}
				return
			}
			var we *wire.Error
			if !errors.As(err, &we) || we.Code != c.code {
				t.Fatalf("got %v, want a %s wire error", err, c.code)
			}
			if !strings.Contains(we.Message, c.hasMsg) {
				t.Fatalf("message %q lacks %q", we.Message, c.hasMsg)
			}
		})
	}
}

// The session's program gets the queue by the workload's variable names.
func TestEnvVars(t *testing.T) {
	got := envVars(qs.QueueEnv{Stream: "S", Group: "G", Subject: "SUB"}, queuesplit.Env{Stream: "ORDERS_remocal", Group: "workers-session-s-1", Subject: "remocal.ORDERS.x"})
	want := map[string]string{"S": "ORDERS_remocal", "G": "workers-session-s-1", "SUB": "remocal.ORDERS.x"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if got := envVars(qs.QueueEnv{Stream: "S", Group: "G"}, queuesplit.Env{Stream: "a", Group: "b", Subject: "ignored"}); len(got) != 2 {
		t.Fatalf("a queue without a subject variable got %v", got)
	}
}

func TestFromWire(t *testing.T) {
	sp := fromWire(&wire.QueueSplit{Consumer: "c", Queue: "q", Mode: "steal", Filter: &wire.QueueFilter{Headers: map[string]string{"tenant": "a"}}})
	if sp.Consumer != "c" || sp.Queue != "q" || sp.EffectiveMode() != qs.ModeSteal || sp.Filter.Headers["tenant"] != "a" {
		t.Fatalf("got %+v", sp)
	}
	if sp := fromWire(&wire.QueueSplit{Consumer: "c"}); sp.EffectiveMode() != qs.ModeMirror || sp.Filter != nil {
		t.Fatalf("an unfiltered split without a mode: %+v", sp)
	}
}
