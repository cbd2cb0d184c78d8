// Package queuerecord is the record test/queueapp's consumers keep of every
// message they handle, and what tests check of it: each message number
// consumed exactly once, by the consumer it was meant for.
//
// A consumer RPUSHes "<who> <n> <tenant>" to the list Key of a results
// Redis before it acknowledges the message, so a message handled twice
// (redelivered after a crash, or copied) shows up twice.
package queuerecord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Key is the results list.
const Key = "queueapp:received"

// MaxRecords bounds what Read accepts: a test produces thousands, never
// millions.
const MaxRecords = 1 << 20

// Record is one consumed message.
type Record struct {
	Who    string // the consumer's name: deployed, alice, bob
	N      int    // the message number the producer gave it
	Tenant string
}

// String is the list entry: "<who> <n> <tenant>".
func (r Record) String() string { return fmt.Sprintf("%s %d %s", r.Who, r.N, r.Tenant) }

// ErrMalformed says a list entry is not "<who> <n> <tenant>".
var ErrMalformed = errors.New("malformed record")

// Parse reads one list entry.
func Parse(s string) (Record, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return Record{}, fmt.Errorf("%w %q: want \"<who> <n> <tenant>\"", ErrMalformed, s)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return Record{}, fmt.Errorf("%w %q: the number: %w", ErrMalformed, s, err)
	}
	return Record{Who: f[0], N: n, Tenant: f[2]}, nil
}

// Append records r in the results list.
func Append(ctx context.Context, rdb *redis.Client, r Record) error {
	if strings.ContainsAny(r.Who, " \t\n") || strings.ContainsAny(r.Tenant, " \t\n") || r.Who == "" || r.Tenant == "" {
		return fmt.Errorf("%w: who %q and tenant %q must be single non-empty words", ErrMalformed, r.Who, r.Tenant)
	}
	if err := rdb.RPush(ctx, Key, r.String()).Err(); err != nil {
		return fmt.Errorf("recording %q in %s: %w", r, Key, err)
	}
	return nil
}

// Read returns every record of the results list, in the order consumers
// pushed them.
func Read(ctx context.Context, rdb *redis.Client) ([]Record, error) {
	n, err := rdb.LLen(ctx, Key).Result()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", Key, err)
	}
	if n > MaxRecords {
		return nil, fmt.Errorf("%s holds %d records, more than the %d a test reads", Key, n, MaxRecords)
	}
	var out []Record
	const page = 10000
	for i := int64(0); i < n; i += page {
		vals, err := rdb.LRange(ctx, Key, i, min(i+page, n)-1).Result()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", Key, err)
		}
		for _, v := range vals {
			r, err := Parse(v)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// Tally counts, for each message number, who consumed it.
type Tally map[int][]string

// Count tallies records.
func Count(records []Record) Tally {
	t := Tally{}
	for _, r := range records {
		t[r.N] = append(t[r.N], r.Who)
	}
	return t
}

// ExactlyOnce checks that each of the numbers first..last was consumed
// exactly once, by want(n) when want is not nil, and that nothing else was
// consumed. The error lists the first problems (missing, duplicated,
// misrouted, unexpected), with their counts.
func (t Tally) ExactlyOnce(first, last int, want func(n int) string) error {
	var missing, dup, wrong, extra []string
	for n := first; n <= last; n++ {
		whos := t[n]
		switch {
		case len(whos) == 0:
			missing = append(missing, strconv.Itoa(n))
		case len(whos) > 1:
			dup = append(dup, fmt.Sprintf("%d:%s", n, strings.Join(whos, ",")))
		case want != nil && whos[0] != want(n):
			wrong = append(wrong, fmt.Sprintf("%d:%s(want %s)", n, whos[0], want(n)))
		}
	}
	for n, whos := range t {
		if n < first || n > last {
			extra = append(extra, fmt.Sprintf("%d:%s", n, strings.Join(whos, ",")))
		}
	}
	if len(missing)+len(dup)+len(wrong)+len(extra) == 0 {
		return nil
	}
	slices.Sort(extra)
	var b strings.Builder
	fmt.Fprintf(&b, "messages %d..%d not consumed exactly once:", first, last)
	for _, p := range []struct {
		what string
		l    []string
	}{{"missing", missing}, {"consumed more than once", dup}, {"consumed by the wrong consumer", wrong}, {"not produced", extra}} {
		if len(p.l) > 0 {
			fmt.Fprintf(&b, " %d %s (%s)", len(p.l), p.what, strings.Join(p.l[:min(len(p.l), 20)], " "))
		}
	}
	return errors.New(b.String())
}
