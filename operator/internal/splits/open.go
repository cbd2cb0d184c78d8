package splits

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/remocal/remocal/operator/internal/queuesplit"
	"github.com/remocal/remocal/operator/internal/queuesplit/jetstream"
	"github.com/remocal/remocal/operator/internal/queuesplit/redisstream"
	qs "github.com/remocal/remocal/protocol/queuesplit"
)

// dialTimeout bounds reaching a broker: a split request waits for it.
const dialTimeout = 10 * time.Second

// routerConsumer is the router's name in the deployed consumer's Redis
// group: fixed, so that a new leader takes over its pending entries.
const routerConsumer = "remocal-router"

// openBroker connects to the queue's broker with the credentials of the
// Secret the consumer names, for the original queue env names.
func openBroker(ctx context.Context, kube kubernetes.Interface, ns string, q qs.Queue, original queuesplit.Env) (queuesplit.Broker, error) {
	user, pass, err := credentials(ctx, kube, ns, q.Broker.Credentials)
	if err != nil {
		return nil, err
	}
	switch q.Broker.Kind {
	case qs.BrokerRedisStreams:
		rdb := redis.NewClient(&redis.Options{Addr: q.Broker.Address, Username: user, Password: pass,
			DialTimeout: dialTimeout, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
		pctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		if err := rdb.Ping(pctx).Err(); err != nil {
			rdb.Close()
			return nil, fmt.Errorf("reaching Redis at %s: %w", q.Broker.Address, err)
		}
		b, err := redisstream.New(rdb, redisstream.Config{Stream: original.Stream, Group: original.Group,
			BodyField: q.Broker.BodyField, Consumer: routerConsumer})
		if err != nil {
			rdb.Close()
			return nil, err
		}
		return b, nil
	case qs.BrokerNATSJetStream:
		opts := []nats.Option{nats.Timeout(dialTimeout), nats.Name("remocal-operator")}
		if pass != "" {
			opts = append(opts, nats.UserInfo(user, pass))
		}
		nc, err := nats.Connect("nats://"+q.Broker.Address, opts...)
		if err != nil {
			return nil, fmt.Errorf("reaching NATS at %s: %w", q.Broker.Address, err)
		}
		b, err := jetstream.New(nc, jetstream.Config{Stream: original.Stream, Durable: original.Group, Subject: original.Subject})
		if err != nil {
			nc.Close()
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("broker kind %q is not one the operator splits", q.Broker.Kind)
}

// errCredentials marks a Secret the operator could not use.
var errCredentials = errors.New("broker credentials")

func credentials(ctx context.Context, kube kubernetes.Interface, ns string, ref *qs.SecretRef) (user, pass string, err error) {
	if ref == nil {
		return "", "", nil
	}
	sec, err := kube.CoreV1().Secrets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return "", "", fmt.Errorf("%w: reading Secret %s/%s (grant the operator get on it: chart value queueSplitting.credentialSecrets): %w",
			errCredentials, ns, ref.Name, err)
	}
	p, ok := sec.Data[ref.PasswordKey]
	if !ok {
		return "", "", fmt.Errorf("%w: Secret %s/%s has no key %q (spec.queues[].broker.credentials.passwordKey)", errCredentials, ns, ref.Name, ref.PasswordKey)
	}
	if ref.UsernameKey != "" {
		u, ok := sec.Data[ref.UsernameKey]
		if !ok {
			return "", "", fmt.Errorf("%w: Secret %s/%s has no key %q (usernameKey)", errCredentials, ns, ref.Name, ref.UsernameKey)
		}
		user = string(u)
	}
	return user, string(p), nil
}
