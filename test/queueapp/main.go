// Command queueapp is a queue producer and consumer for remocal's tests of
// queue splitting (issue 16): real go-redis and nats.go clients against a
// Redis stream or a NATS JetStream stream.
//
//	queueapp produce -broker redis -addr redis:6379 -stream orders -group workers -count 300 -create
//	queueapp produce -broker nats -addr nats:4222 -stream ORDERS -group workers -subject orders.new -count 300 -create
//	queueapp consume -broker redis -addr redis:6379 -results-addr results:6379 -who deployed
//	queueapp results -results-addr results:6379
//
// The consumer takes the names of what it reads from environment variables
// whose names its flags give (-stream-env ORDERS_STREAM -group-env
// ORDERS_GROUP -subject-env ORDERS_SUBJECT, the defaults): remocal's
// operator changes those variables' values to point the deployed consumer,
// or a developer's local copy, at a queue of its own, and the program runs
// unchanged. The producer reads the same variables unless -stream, -group
// or -subject are given.
//
// Message n carries the header (Redis: field) n and tenant (a, b, c in
// turn for n = 1, 2, 3, ...) and the JSON body {"n":n,"tenant":"a"} (Redis:
// field body). The consumer records each message it handles in the results
// Redis (queuerecord) and only then acknowledges it; on SIGTERM it finishes
// the messages in hand, acknowledges them and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/remocal/remocal/test/queueapp/queuerecord"
)

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "queueapp:", err)
		os.Exit(1)
	}
}

// config is what every mode reads.
type config struct {
	broker      string // redis or nats
	addr        string
	stream      string
	group       string
	subject     string
	resultsAddr string
	who         string
	consumer    string
	count       int
	start       int
	rate        float64
	create      bool
	batch       int
	claimIdle   time.Duration
	opTimeout   time.Duration
	tenants     []string
}

// errUsage is a bad command line or environment.
var errUsage = errors.New("usage")

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: queueapp produce|consume|results [flags] (-h for the flags)", errUsage)
	}
	mode := args[0]
	cfg, err := parse(mode, args[1:])
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch mode {
	case "produce":
		return produce(ctx, cfg)
	case "consume":
		return consume(ctx, cfg)
	case "results":
		return results(ctx, cfg)
	}
	return fmt.Errorf("%w: unknown mode %q: want produce, consume or results", errUsage, mode)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func parse(mode string, args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("queueapp "+mode, flag.ContinueOnError)
	fs.StringVar(&c.broker, "broker", env("BROKER", "redis"), "redis or nats (env BROKER)")
	fs.StringVar(&c.addr, "addr", env("BROKER_ADDR", ""), "the broker's host:port (env BROKER_ADDR)")
	streamEnv := fs.String("stream-env", "ORDERS_STREAM", "the variable naming the Redis stream key or JetStream stream")
	groupEnv := fs.String("group-env", "ORDERS_GROUP", "the variable naming the Redis consumer group or JetStream durable")
	subjectEnv := fs.String("subject-env", "ORDERS_SUBJECT", "the variable naming the JetStream subject")
	stream := fs.String("stream", "", "the stream (default: the value of -stream-env's variable)")
	group := fs.String("group", "", "the group or durable (default: the value of -group-env's variable)")
	subject := fs.String("subject", "", "the subject (default: the value of -subject-env's variable)")
	fs.StringVar(&c.resultsAddr, "results-addr", env("RESULTS_ADDR", ""), "the results Redis's host:port (env RESULTS_ADDR)")
	fs.StringVar(&c.who, "who", env("WHO", "deployed"), "the consumer's name in the records (env WHO)")
	fs.StringVar(&c.consumer, "consumer", "", "the Redis consumer name (default: the host name)")
	fs.IntVar(&c.count, "count", 100, "produce: how many messages")
	fs.IntVar(&c.start, "start", 1, "produce: the first message's number")
	fs.Float64Var(&c.rate, "rate", 0, "produce: messages per second (0: as fast as the broker takes them)")
	fs.BoolVar(&c.create, "create", false, "produce: create the stream and its group or durable if missing")
	fs.IntVar(&c.batch, "batch", 10, "consume: messages read at once")
	fs.DurationVar(&c.claimIdle, "claim-idle", time.Minute, "consume (redis): claim entries other consumers of the group left pending this long (0: never)")
	fs.DurationVar(&c.opTimeout, "timeout", 10*time.Second, "the limit of each broker operation")
	tenants := fs.String("tenants", "a,b,c", "produce: the tenants messages cycle through")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	pick := func(flagVal, envName string) string {
		if flagVal != "" {
			return flagVal
		}
		return os.Getenv(envName)
	}
	c.stream, c.group, c.subject = pick(*stream, *streamEnv), pick(*group, *groupEnv), pick(*subject, *subjectEnv)
	c.tenants = strings.Split(*tenants, ",")
	if c.consumer == "" {
		h, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("the consumer name: %w (give -consumer)", err)
		}
		c.consumer = h
	}
	return c, c.check(mode, *streamEnv, *groupEnv, *subjectEnv)
}

// check says what is missing for mode.
func (c config) check(mode, streamEnv, groupEnv, subjectEnv string) error {
	var missing []string
	if mode != "results" {
		if c.broker != "redis" && c.broker != "nats" {
			return fmt.Errorf("%w: -broker %q: want redis or nats", errUsage, c.broker)
		}
		if c.addr == "" {
			missing = append(missing, "-addr or BROKER_ADDR")
		}
		if c.stream == "" {
			missing = append(missing, "-stream or "+streamEnv)
		}
		if c.group == "" && (mode == "consume" || c.create) {
			missing = append(missing, "-group or "+groupEnv)
		}
		if c.broker == "nats" && mode == "produce" && c.subject == "" {
			missing = append(missing, "-subject or "+subjectEnv)
		}
	}
	if mode != "produce" && c.resultsAddr == "" {
		missing = append(missing, "-results-addr or RESULTS_ADDR")
	}
	if mode == "produce" && (c.count < 0 || c.rate < 0) {
		return fmt.Errorf("%w: -count and -rate must not be negative", errUsage)
	}
	if c.batch < 1 || c.opTimeout <= 0 {
		return fmt.Errorf("%w: -batch and -timeout must be positive", errUsage)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s: set %s", errUsage, mode, strings.Join(missing, ", "))
	}
	return nil
}

// message is what the producer sends as message n.
func (c config) message(n int) (tenant string, body []byte) {
	tenant = c.tenants[(n-1)%len(c.tenants)]
	if n < 1 {
		tenant = c.tenants[0]
	}
	return tenant, fmt.Appendf(nil, `{"n":%d,"tenant":%q}`, n, tenant)
}

// pace returns a function that waits for the next message's turn at the
// configured rate, or returns at once at rate 0.
func (c config) pace(ctx context.Context) func() error {
	if c.rate == 0 {
		return func() error { return ctx.Err() }
	}
	t := time.NewTicker(time.Duration(float64(time.Second) / c.rate))
	first := true
	return func() error {
		if first {
			first = false
			return ctx.Err()
		}
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

func produce(ctx context.Context, c config) error {
	if c.broker == "redis" {
		return produceRedis(ctx, c)
	}
	return produceNATS(ctx, c)
}

func consume(ctx context.Context, c config) error {
	res := redisClient(c.resultsAddr, c.opTimeout)
	defer res.Close()
	if c.broker == "redis" {
		return consumeRedis(ctx, c, res)
	}
	return consumeNATS(ctx, c, res)
}

// record keeps what the consumer handled, in a context of its own: a
// message in hand is finished even after SIGTERM.
func (c config) record(res *redis.Client, n int, tenant string) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.opTimeout)
	defer cancel()
	return queuerecord.Append(ctx, res, queuerecord.Record{Who: c.who, N: n, Tenant: tenant})
}

func results(ctx context.Context, c config) error {
	res := redisClient(c.resultsAddr, c.opTimeout)
	defer res.Close()
	ctx, cancel := context.WithTimeout(ctx, c.opTimeout)
	defer cancel()
	recs, err := queuerecord.Read(ctx, res)
	if err != nil {
		return err
	}
	for _, r := range recs {
		fmt.Println(r)
	}
	return nil
}

func redisClient(addr string, timeout time.Duration) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: addr, DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
		// Blocking reads wait longer than ReadTimeout; go-redis adds
		// their BLOCK time to it.
		ContextTimeoutEnabled: true,
		MaxRetries:            3,
		// RESP2: with RESP3, go-redis (9.23) peeks at a pooled connection
		// for push notifications before each command without a deadline;
		// a connection whose path died without a FIN (a session moving to
		// another operator leader) hung the consumer there forever.
		Protocol: 2,
	})
}
