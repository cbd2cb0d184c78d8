package inflight

import (
	"slices"
	"testing"
)

// The keeper sees what the supervisor recorded and not released: the
// loop's current notification and every held call.
func TestPending(t *testing.T) {
	tb, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	tb.Received(10)
	a, b := tb.Hold(11), tb.Hold(12)
	tb.Received(13) // the loop moved on; 10 was answered inline
	tb.Release(a)
	got, err := Pending(tb.File())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []uint64{12, 13}; !slices.Equal(got, want) {
		t.Errorf("pending %v, want %v", got, want)
	}
	tb.Release(b)
	if c := tb.Hold(14); c != b {
		t.Errorf("released slot %d not reused (got %d)", b, c)
	}
}

// A full table refuses to hold more and says so.
func TestHoldFull(t *testing.T) {
	tb, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	for i := 1; i < Slots; i++ {
		if tb.Hold(uint64(i)) < 0 {
			t.Fatalf("slot %d refused", i)
		}
	}
	if s := tb.Hold(1 << 40); s != -1 {
		t.Errorf("full table gave slot %d", s)
	}
}

// The cost the notification loop pays per notification.
func BenchmarkReceived(b *testing.B) {
	tb, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	for i := 0; b.Loop(); i++ {
		tb.Received(uint64(i))
	}
}

// The cost a call handed to a goroutine pays.
func BenchmarkHoldRelease(b *testing.B) {
	tb, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	for i := 0; b.Loop(); i++ {
		tb.Release(tb.Hold(uint64(i)))
	}
}
