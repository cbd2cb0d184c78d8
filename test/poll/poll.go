// Package poll retries a check until it holds, for tests and the test
// harness: the one place a test waits on a condition nothing signals (a
// process gone, a rule removed, a listing that catches up).
//
// It depends on nothing of this module, so a unit test can use it without
// pulling in a harness.
package poll

import (
	"context"
	"fmt"
	"time"
)

// The backoff between tries. Most conditions the tests wait on settle in a
// few milliseconds (a kernel object released, a goroutine noticing a
// disconnect), so the first retry comes after First. Doubling keeps a long
// wait to a few dozen tries (30 s is about 36) instead of a busy loop that
// starves the code it waits for, and Max bounds how late a condition that
// finally holds is noticed.
const (
	First = 10 * time.Millisecond
	Max   = time.Second
)

// Until calls try until it returns nil, and returns nil then. When timeout
// has passed, or ctx ends, first, it returns try's last error wrapped with
// how long it waited and how many tries it made (and ctx's error, if ctx
// ended). try runs at once, then after 10 ms, 20 ms, 40 ms ... up to 1 s
// apart; one last try runs at the timeout itself, so a condition that holds
// just before it is still seen.
func Until(ctx context.Context, timeout time.Duration, try func() error) error {
	return until(ctx, timeout, First, Max, try)
}

func until(ctx context.Context, timeout, first, most time.Duration, try func() error) error {
	start := time.Now()
	deadline := start.Add(timeout)
	delay := first
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for tries := 1; ; tries++ {
		err := try()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("after %s (%d tries), %w: %w", time.Since(start).Round(time.Millisecond), tries, ctx.Err(), err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("after %s (%d tries): %w", time.Since(start).Round(time.Millisecond), tries, err)
		}
		wait := min(delay, left)
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s (%d tries), %w: %w", time.Since(start).Round(time.Millisecond), tries, ctx.Err(), err)
		case <-timer.C:
		}
		delay = min(2*delay, most)
	}
}
