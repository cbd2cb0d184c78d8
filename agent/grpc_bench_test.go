package agent_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
)

// serveGRPC serves the gRPC health service on l until the benchmark ends.
func serveGRPC(b *testing.B, l net.Listener) {
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(l)
	}()
	b.Cleanup(func() {
		s.Stop()
		<-done
	})
}

// BenchmarkStolenGRPCLatency compares unary gRPC calls (the health
// service's Check) from the peer pod on one HTTP/2 connection: answered by
// the server in the target's namespace directly, then stolen by a
// metadata filter and answered by the same server code on this side, and
// (routed) sent through the agent's HTTP/2 routing to the application
// because their metadata do not match. ratio-p50 is stolen/direct.
func BenchmarkStolenGRPCLatency(b *testing.B) {
	env, c, _ := benchSetup(b)
	const port = 9094
	appNS, err := env.App.NS()
	if err != nil {
		b.Fatal(err)
	}
	l, err := appNS.Listen(context.Background(), "tcp", fmt.Sprintf(":%d", port))
	appNS.Close()
	if err != nil {
		b.Fatal(err)
	}
	serveGRPC(b, l)
	ll, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	serveGRPC(b, ll)

	calls := func(n int, user string) []time.Duration {
		conn, err := grpc.NewClient(fmt.Sprintf("%s:%d", localenv.AppIP, port),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				return env.Dial(ctx, env.Peer, "tcp", addr)
			}))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		hc := healthpb.NewHealthClient(conn)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-user", user)
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil { // connects
			b.Fatal(err)
		}
		out := make([]time.Duration, 0, n)
		for range n {
			start := time.Now()
			if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				b.Fatal(err)
			}
			out = append(out, time.Since(start))
		}
		return out
	}
	b.ResetTimer()
	direct := calls(b.N, "bench")
	sub, err := c.Subscribe(context.Background(), wire.Subscribe{Port: port, Mode: wire.ModeSteal,
		Filter: &wire.HTTPFilter{Headers: map[string]string{"X-User": "bench"}}}, agentclient.ForwardTo(ll.Addr().String()))
	if err != nil {
		b.Fatal(err)
	}
	stolen := calls(b.N, "bench")
	routed := calls(b.N, "other")
	sub.Close(context.Background())
	reportLatency(b, direct, stolen)
	b.ReportMetric(p50(routed), "routed-to-app-p50-µs")
}

func p50(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2].Nanoseconds()) / 1e3
}
