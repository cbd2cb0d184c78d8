package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/protocol/wire"
)

// errnoOf decides what the program sees when the target fails a call.
func TestErrnoOf(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		fallback unix.Errno
		want     unix.Errno
	}{
		{"errno", unix.ECONNREFUSED, unix.EIO, unix.ECONNREFUSED},
		{"wrapped errno", fmt.Errorf("dial: %w", unix.EHOSTUNREACH), unix.EIO, unix.EHOSTUNREACH},
		{"agent's errno wins over its code", &wire.Error{Code: wire.CodeNotFound, Errno: int(unix.ENOTDIR)}, unix.EIO, unix.ENOTDIR},
		{"not found", &wire.Error{Code: wire.CodeNotFound}, unix.EIO, unix.ENOENT},
		{"permission denied", &wire.Error{Code: wire.CodePermissionDenied}, unix.EIO, unix.EACCES},
		{"too large", &wire.Error{Code: wire.CodeTooLarge}, unix.EIO, unix.EFBIG},
		{"wrapped agent error", fmt.Errorf("stat: %w", &wire.Error{Code: wire.CodeNotFound}), unix.EIO, unix.ENOENT},
		{"other code", &wire.Error{Code: wire.CodeInternal}, unix.EIO, unix.EIO},
		{"timeout", context.DeadlineExceeded, unix.EIO, unix.ETIMEDOUT},
		{"wrapped timeout", fmt.Errorf("read: %w", context.DeadlineExceeded), unix.ENETUNREACH, unix.ETIMEDOUT},
		{"canceled", context.Canceled, unix.ENETUNREACH, unix.ENETUNREACH},
		{"anything else", errors.New("connection lost"), unix.ENETUNREACH, unix.ENETUNREACH},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errnoOf(tc.err, tc.fallback); got != tc.want {
				t.Errorf("errnoOf(%v, %v) = %v, want %v", tc.err, tc.fallback, got, tc.want)
			}
		})
	}
}

func TestHolderOf(t *testing.T) {
	h := &wire.Holder{Client: "alice@laptop", Subscription: "s1", Port: 8080, Mode: wire.ModeSteal}
	for _, tc := range []struct {
		name string
		err  error
		want *wire.Holder
	}{
		{"conflict", &wire.Error{Code: wire.CodeConflict, Holder: h}, h},
		{"wrapped conflict", fmt.Errorf("subscribe: %w", &wire.Error{Code: wire.CodeConflict, Holder: h}), h},
		{"conflict without holder", &wire.Error{Code: wire.CodeConflict}, nil},
		{"other code with holder", &wire.Error{Code: wire.CodeUnavailable, Holder: h}, nil},
		{"not an agent error", errors.New("boom"), nil},
		{"nil", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := holderOf(tc.err); got != tc.want {
				t.Errorf("holderOf(%v) = %+v, want %+v", tc.err, got, tc.want)
			}
		})
	}
}

func TestStatsSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(*statsCounter)
		want Stats
	}{
		{"nothing", func(*statsCounter) {}, Stats{Remote: map[string]uint64{}}},
		{"counted", func(st *statsCounter) {
			st.add(3, 0)
			st.add(0, 2)
			st.remote("open")
			st.remote("open")
			st.remote("connect")
		}, Stats{Notified: 3, Continued: 2, Remote: map[string]uint64{"open": 2, "connect": 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Supervisor{}
			tc.do(&s.stats)
			got := s.Snapshot()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Snapshot (-want +got):\n%s", diff)
			}
			// A snapshot is a copy: changing it changes no counter.
			got.Remote["open"] = 99
			if s.Snapshot().Remote["open"] == 99 {
				t.Error("Snapshot shares its map with the counters")
			}
		})
	}
}

// The supervisor emits events only to a configured OnEvent.
func TestEmit(t *testing.T) {
	(&Supervisor{}).emit(Event{Message: "nobody listens"}) // must not panic
	var got []string
	s := &Supervisor{cfg: Config{OnEvent: func(ev Event) { got = append(got, ev.Message) }}}
	s.emit(Event{Message: "a"})
	s.emit(Event{Message: "b"})
	if diff := cmp.Diff([]string{"a", "b"}, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

var cmpSortInts = cmp.Transformer("sort", func(in []int) []int {
	out := append([]int(nil), in...)
	slices.Sort(out)
	return out
})
