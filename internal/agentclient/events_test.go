package agentclient

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/poll"
)

// operatorLike plays a 1.2 server on conn: it answers pings (counting
// them) and a subscribe, and pushes a subscription.lost event for it when
// push is closed.
func operatorLike(t *testing.T, conn net.Conn, pings *atomic.Int64, push <-chan struct{}) {
	defer conn.Close()
	if err := wire.ReadPreamble(conn); err != nil {
		return
	}
	if _, err := wire.ReadMessage[*wire.Hello](conn, wire.MaxHandshakeFrameSize); err != nil {
		t.Errorf("hello: %v", err)
		return
	}
	wire.WritePreamble(conn)
	wire.WriteMessage(conn, 0, &wire.Welcome{Protocol: wire.Current, Capabilities: []wire.Capability{wire.CapOperator}, ClientID: "s-x"})
	mux, err := yamux.Server(conn, wire.MuxConfig())
	if err != nil {
		return
	}
	defer mux.Close()
	control, err := mux.AcceptStream()
	if err != nil {
		return
	}
	go func() {
		<-push
		wire.WriteMessage(control, 0, &wire.Event{Kind: wire.EventSubscriptionLost, Subscription: "s1", Port: 8080,
			By: &wire.Holder{Client: "carol@desk", User: "carol"}, Message: "port 8080 was taken by carol"})
	}()
	for {
		env, err := wire.ReadEnvelope(control, wire.MaxFrameSize)
		if err != nil {
			return
		}
		switch env.Type {
		case wire.TypePing:
			pings.Add(1)
			wire.WriteMessage(control, env.ID, &wire.PingResult{})
		case wire.TypeSubscribe:
			wire.WriteMessage(control, env.ID, &wire.SubscribeResult{ID: "s1"})
		}
	}
}

func TestEventsEndLostSubscriptionsAndHeartbeatPings(t *testing.T) {
	clientConn, serverConn := net.Pipe()
	var pings atomic.Int64
	push := make(chan struct{})
	served := make(chan struct{})
	go func() { defer close(served); operatorLike(t, serverConn, &pings, push) }()
	events := make(chan wire.Event, 1)
	c, err := New(context.Background(), clientConn, Options{
		Name: "bob@desk", Unauthenticated: true, Heartbeat: 10 * time.Millisecond,
		OnEvent: func(ev wire.Event) { events <- ev },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close(); <-served }()

	sub, err := c.Subscribe(context.Background(), wire.Subscribe{Port: 8080, Mode: wire.ModeSteal}, HandlerFunc(func(context.Context, *Incoming) {}))
	if err != nil {
		t.Fatal(err)
	}
	close(push)
	ev := <-events
	if ev.Kind != wire.EventSubscriptionLost || ev.By == nil || ev.By.User != "carol" {
		t.Fatalf("event = %+v", ev)
	}
	select {
	case <-sub.Lost():
	default:
		t.Fatal("the subscription named by subscription.lost is not ended when OnEvent runs")
	}
	if got := sub.LostEvent(); got.Port != 8080 {
		t.Errorf("LostEvent = %+v", got)
	}
	if err := sub.Close(context.Background()); err != nil {
		t.Errorf("closing a lost subscription: %v", err)
	}
	// Heartbeats: nothing signals them but the pings arriving.
	if err := poll.Until(context.Background(), 10*time.Second, func() error {
		if n := pings.Load(); n < 3 {
			return fmt.Errorf("%d heartbeat pings so far", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
