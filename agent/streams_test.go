package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/poll"
)

// streamBound is the agent's maxClientStreams.
const streamBound = 1024

// servedStreams counts the agent's goroutines serving a client's stream.
// The agent runs in this process, so its goroutines are ours to count.
func servedStreams() int {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("agent.(*session).serveStream")) {
			n++
		}
	}
	return n
}

// TestStreamFloodIsBounded: a client that opens streams far beyond the
// agent's bound (1500 dials it never closes) gets at most the bound served
// at once; the rest wait in yamux's backlog or fail. Another client is
// still served meanwhile, and so is the flooding client once it closes its
// streams.
func TestStreamFloodIsBounded(t *testing.T) {
	env := envtest.New(t)
	ta := startAgent(t, env.App, agentOptions{})
	mallory := connect(t, ta.addr, "mallory@laptop")
	bob := connect(t, ta.addr, "bob@laptop")
	// A connected UDP socket needs no server: each dial is one open stream
	// and one socket in the pod for as long as the client keeps it.
	target := fmt.Sprintf("%s:7007", localenv.PeerIP)

	const flood = 1500
	floodCtx, stopFlood := context.WithCancel(context.Background())
	defer stopFlood()
	type result struct {
		conn net.Conn
		err  error
	}
	results := make(chan result, flood)
	for range flood {
		go func() {
			conn, err := mallory.DialContext(floodCtx, "udp", target)
			results <- result{conn, err}
		}()
	}
	var open []net.Conn
	received := 0
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	ctx := testCtx(t)
	// Wait until the agent serves as many streams as it will: the bound.
	err := poll.Until(ctx, 20*time.Second, func() error {
		for {
			select {
			case r := <-results:
				received++
				if r.err == nil {
					open = append(open, r.conn)
				}
				continue
			default:
			}
			break
		}
		if n := servedStreams(); n != streamBound || len(open) != streamBound {
			return fmt.Errorf("the agent serves %d streams and %d dials succeeded, want %d each", n, len(open), streamBound)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := servedStreams(); n > streamBound {
		t.Fatalf("the agent serves %d streams of one client, above the bound %d", n, streamBound)
	}

	// Another client is served meanwhile.
	conn, err := bob.DialContext(ctx, "udp", target)
	if err != nil {
		t.Fatalf("another client's dial during the flood: %v", err)
	}
	conn.Close()
	if n := servedStreams(); n > streamBound+1 {
		t.Fatalf("the agent serves %d streams, above the flooding client's bound %d and the other client's one", n, streamBound)
	}

	// The flooding client gives up: its queued dials are cancelled and
	// its streams closed. Dials still queued in yamux go through as the
	// agent accepts them; close those too.
	stopFlood()
	for _, c := range open {
		c.Close()
	}
	open = nil
	for ; received < flood; received++ {
		select {
		case r := <-results:
			if r.err == nil {
				r.conn.Close()
			}
		case <-ctx.Done():
			t.Fatalf("%d of the %d flooding dials never returned", flood-received, flood)
		}
	}
	if err := poll.Until(ctx, 20*time.Second, func() error {
		if n := servedStreams(); n != 0 {
			return fmt.Errorf("the agent still serves %d streams after the client closed them all", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	conn, err = mallory.DialContext(ctx, "udp", target)
	if err != nil {
		t.Fatalf("the flooding client's dial after closing its streams: %v", err)
	}
	conn.Close()
}
