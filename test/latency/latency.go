// Package latency is how test programs report timings to benchmarks that
// run them as separate processes (the probe on the laptop side, the
// toolbox in a pod): one line "NAME p50=… p90=… p99=… max=…" in
// nanoseconds, and its parser.
package latency

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Summary renders the distribution of d (which it sorts).
func Summary(d []time.Duration) string {
	if len(d) == 0 {
		return "p50=0 p90=0 p99=0 max=0"
	}
	slices.Sort(d)
	at := func(q float64) int64 { return d[int(float64(len(d)-1)*q)].Nanoseconds() }
	return fmt.Sprintf("p50=%d p90=%d p99=%d max=%d", at(0.5), at(0.9), at(0.99), at(1))
}

// Parse finds the line "name p50=…" in out and returns its values.
func Parse(out, name string) (map[string]float64, error) {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), name+" ")
		if !ok {
			continue
		}
		m := map[string]float64{}
		for _, f := range strings.Fields(rest) {
			k, v, _ := strings.Cut(f, "=")
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: bad value in %q", name, line)
			}
			m[k] = n
		}
		return m, nil
	}
	return nil, fmt.Errorf("no %q line in output:\n%s", name, out)
}
