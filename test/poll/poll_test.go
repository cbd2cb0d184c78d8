package poll

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var errNotYet = errors.New("not yet")

func TestSucceedsAfterSomeTries(t *testing.T) {
	tries := 0
	err := Until(t.Context(), time.Minute, func() error {
		tries++
		if tries < 4 {
			return errNotYet
		}
		return nil
	})
	if err != nil || tries != 4 {
		t.Fatalf("Until = %v after %d tries, want nil after 4", err, tries)
	}
}

func TestSucceedsAtOnceWithoutWaiting(t *testing.T) {
	// An expired timeout still gets its one try.
	tries := 0
	if err := Until(t.Context(), 0, func() error { tries++; return nil }); err != nil || tries != 1 {
		t.Fatalf("Until = %v after %d tries, want nil after 1", err, tries)
	}
}

func TestTimeoutReturnsTheLastError(t *testing.T) {
	const timeout = 100 * time.Millisecond
	start := time.Now()
	tries := 0
	var last time.Time
	err := Until(t.Context(), timeout, func() error {
		defer func() { last = time.Now() }() // when the try ends, as Until sees it
		tries++
		return fmt.Errorf("try %d: %w", tries, errNotYet)
	})
	if !errors.Is(err, errNotYet) || !strings.Contains(err.Error(), fmt.Sprintf("try %d: not yet", tries)) {
		t.Fatalf("Until = %v, want the last try's error (try %d)", err, tries)
	}
	if !strings.HasPrefix(err.Error(), "after ") || !strings.Contains(err.Error(), fmt.Sprintf("(%d tries)", tries)) {
		t.Errorf("Until = %q, want it to say how long it waited and how often it tried", err)
	}
	// The last try runs at the timeout, not a backoff step before it.
	if d := last.Sub(start); d < timeout {
		t.Errorf("last try ended %v after the start, want at the timeout (%v) or later", d, timeout)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Until = %v: a timeout is not the context's", err)
	}
}

func TestContextCancelledDuringATry(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tries := 0
	err := Until(ctx, time.Hour, func() error {
		tries++
		if tries == 3 {
			cancel()
		}
		return fmt.Errorf("try %d: %w", tries, errNotYet)
	})
	if tries != 3 || !errors.Is(err, context.Canceled) || !errors.Is(err, errNotYet) || !strings.Contains(err.Error(), "try 3") {
		t.Fatalf("Until = %v after %d tries, want context.Canceled and try 3's error after 3", err, tries)
	}
}

func TestContextEndingDuringABackoff(t *testing.T) {
	// The context's deadline comes long before the timeout, in the middle
	// of a wait between tries: Until returns then, not at the timeout.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Until(ctx, time.Hour, func() error { return errNotYet })
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errNotYet) {
		t.Fatalf("Until = %v, want context.DeadlineExceeded and the last error", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Until returned %v after the context ended at 50ms", d)
	}
}

// tryTimes runs until with an always failing try and returns when each try
// began.
func tryTimes(t *testing.T, timeout, first, most time.Duration) []time.Time {
	t.Helper()
	var at []time.Time
	err := until(t.Context(), timeout, first, most, func() error {
		at = append(at, time.Now())
		return errNotYet
	})
	if !errors.Is(err, errNotYet) {
		t.Fatalf("until = %v, want errNotYet", err)
	}
	return at
}

// TestBackoffGrows checks the gaps between tries against the schedule.
// Timers never fire early, so each gap is at least its step however busy
// the machine is; and a busy loop would make far more tries than the
// schedule leaves room for.
func TestBackoffGrows(t *testing.T) {
	const first, most, timeout = 2 * time.Millisecond, 16 * time.Millisecond, 150 * time.Millisecond
	at := tryTimes(t, timeout, first, most)
	// On schedule: tries at 0, 2, 6, 14, 30, then every 16 ms up to 142,
	// and the last at 150: 13. Late timers only make fewer.
	if len(at) > 13 {
		t.Fatalf("%d tries in %v, want at most 13", len(at), timeout)
	}
	if len(at) < 3 {
		t.Fatalf("%d tries in %v, want at least 3", len(at), timeout)
	}
	step := first
	for i := 1; i < len(at)-1; i++ { // the last gap is cut short by the timeout
		if gap := at[i].Sub(at[i-1]); gap < step {
			t.Errorf("gap before try %d is %v, want at least %v", i+1, gap, step)
		}
		step = min(2*step, most)
	}
}

// TestUntilBacksOff checks Until's own schedule: 10 ms doubling, in
// 300 ms at most 6 tries (0, 10, 30, 70, 150, 300), where a loop without
// backoff would make thousands.
func TestUntilBacksOff(t *testing.T) {
	tries := 0
	start := time.Now()
	Until(t.Context(), 300*time.Millisecond, func() error { tries++; return errNotYet })
	if tries > 6 || tries < 2 {
		t.Errorf("%d tries in %v, want 2 to 6", tries, time.Since(start))
	}
}
