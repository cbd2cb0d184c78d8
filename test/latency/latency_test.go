package latency

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSummaryParses(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	out := "noise\nget-ns " + Summary(d) + "\n"
	got, err := Parse(out, "get-ns")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"p50": 50e3, "p90": 90e3, "p99": 99e3, "max": 100e3}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := Parse(out, "stat-ns"); err == nil {
		t.Error("Parse found a line that is not there")
	}
}
