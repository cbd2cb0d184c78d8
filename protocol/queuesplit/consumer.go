package queuesplit

import (
	"errors"
	"fmt"
	"regexp"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group, Version and names of the custom resource.
const (
	Group    = "queues.remocal.dev"
	Version  = "v1alpha1"
	Kind     = "RemocalQueueConsumer"
	Resource = "remocalqueueconsumers"
)

// SchemeGroupVersion is Group and Version together.
var SchemeGroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// RemocalQueueConsumer declares a workload that consumes one or more queues
// which sessions may split.
type RemocalQueueConsumer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ConsumerSpec `json:"spec"`
	// Status is the operator's record of the splits in progress. It is
	// what a new operator leader resumes from (with the broker's own
	// state), so it is written before a split takes effect.
	Status ConsumerStatus `json:"status,omitzero"`
}

// ConsumerStatus lists the queues of the consumer that are split now.
type ConsumerStatus struct {
	Splits []QueueSplitStatus `json:"splits,omitempty"`
}

// Phases of a queue's split.
const (
	// PhaseSplitting: a router routes the queue; the workload reads its
	// own temporary queue (or is rolling over to it).
	PhaseSplitting = "Splitting"
	// PhaseRestoring: the last session ended; the operator gives the
	// workload its queue back and drains the temporary queues into it.
	PhaseRestoring = "Restoring"
)

// QueueSplitStatus is one split queue.
type QueueSplitStatus struct {
	Queue string `json:"queue"`
	Phase string `json:"phase"`
	// Sessions split the queue, in the order they asked: the oldest
	// matching steal takes a message.
	Sessions []SessionSplit `json:"sessions,omitempty"`
	// Message says what went wrong, if anything (a rollout that does
	// not finish, an unreachable broker); the operator retries.
	Message string `json:"message,omitempty"`
}

// SessionSplit is one session's split of a queue.
type SessionSplit struct {
	Session string      `json:"session"`
	User    string      `json:"user,omitempty"`
	Mode    Mode        `json:"mode"`
	Filter  *Filter     `json:"filter,omitempty"`
	Since   metav1.Time `json:"since"`
}

// RemocalQueueConsumerList is a list of RemocalQueueConsumer.
type RemocalQueueConsumerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RemocalQueueConsumer `json:"items"`
}

// ConsumerSpec is the workload and the queues it consumes.
type ConsumerSpec struct {
	Workload Workload `json:"workload"`
	Queues   []Queue  `json:"queues"`
}

// Workload is the deployed consumer, in the consumer's namespace.
type Workload struct {
	// Kind is deployment or statefulset (the operator patches the pod
	// template and waits for the rollout).
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Container holds the env vars; empty is the first container.
	Container string `json:"container,omitempty"`
}

// BrokerKind names a broker.
type BrokerKind string

// Brokers.
const (
	BrokerRedisStreams  BrokerKind = "redis-streams"
	BrokerNATSJetStream BrokerKind = "nats-jetstream"
)

// Queue is one queue of the workload.
type Queue struct {
	// Name identifies the queue within the consumer (Split.Queue).
	Name   string `json:"name"`
	Broker Broker `json:"broker"`
	// Env names the workload's environment variables whose values name
	// the queue; the operator changes them for the deployed consumer and
	// gives a session's local program its own values.
	Env QueueEnv `json:"env"`
}

// Broker says how to reach the broker.
type Broker struct {
	Kind BrokerKind `json:"kind"`
	// Address is host:port, reached from the operator's pod.
	Address string `json:"address"`
	// Credentials, when the broker needs them, come from a Secret in the
	// consumer's namespace.
	Credentials *SecretRef `json:"credentials,omitempty"`
	// BodyField, for redis-streams, is the entry field whose value is
	// the body that filters' JSON paths read ("body" when empty).
	BodyField string `json:"bodyField,omitempty"`
}

// SecretRef names a Secret and the keys of the credentials in it.
type SecretRef struct {
	Name string `json:"name"`
	// UsernameKey and PasswordKey name the Secret's keys (a Redis ACL
	// user and password, a NATS user and password); an empty UsernameKey
	// means password only (Redis requirepass, a NATS token).
	UsernameKey string `json:"usernameKey,omitempty"`
	PasswordKey string `json:"passwordKey"`
}

// QueueEnv names environment variables of the workload's container.
type QueueEnv struct {
	// Stream holds the Redis stream key or the JetStream stream name.
	Stream string `json:"stream"`
	// Group holds the Redis consumer group or the JetStream durable
	// (pull) consumer the workload reads with.
	Group string `json:"group"`
	// Subject, for nats-jetstream, holds the subject (filter) the
	// workload consumes, if it reads one.
	Subject string `json:"subject,omitempty"`
}

// Validate checks the spec, reporting every problem with its field.
func (s *ConsumerSpec) Validate() error {
	var errs []error
	add := func(field string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	switch s.Workload.Kind {
	case "deployment", "statefulset":
	default:
		add("spec.workload.kind", fmt.Errorf(`got %q, expected "deployment" or "statefulset"`, s.Workload.Kind))
	}
	add("spec.workload.name", checkName(s.Workload.Name))
	if len(s.Queues) == 0 {
		add("spec.queues", errors.New("is empty; declare at least one queue"))
	}
	seen := map[string]bool{}
	for i, q := range s.Queues {
		at := fmt.Sprintf("spec.queues[%d]", i)
		add(at+".name", checkName(q.Name))
		if seen[q.Name] {
			add(at+".name", fmt.Errorf("%q is declared twice; give each queue its own name", q.Name))
		}
		seen[q.Name] = true
		add(at+".broker", q.Broker.validate())
		add(at+".env", q.Env.validate(q.Broker.Kind))
	}
	return errors.Join(errs...)
}

func (b *Broker) validate() error {
	var errs []error
	switch b.Kind {
	case BrokerRedisStreams, BrokerNATSJetStream:
	default:
		errs = append(errs, fmt.Errorf(`kind: got %q, expected "redis-streams" or "nats-jetstream"`, b.Kind))
	}
	if !hostPortRE.MatchString(b.Address) {
		errs = append(errs, fmt.Errorf(`address: got %q, expected host:port such as "redis.shop.svc:6379"`, b.Address))
	}
	if c := b.Credentials; c != nil {
		if err := checkName(c.Name); err != nil {
			errs = append(errs, fmt.Errorf("credentials.name: %w", err))
		}
		if c.PasswordKey == "" {
			errs = append(errs, errors.New("credentials.passwordKey: is empty; name the Secret's key holding the password or token"))
		}
	}
	if b.BodyField != "" && b.Kind != BrokerRedisStreams {
		errs = append(errs, errors.New("bodyField: only redis-streams entries have fields; remove it"))
	}
	return errors.Join(errs...)
}

func (e *QueueEnv) validate(kind BrokerKind) error {
	var errs []error
	for _, v := range []struct{ field, name string }{{"stream", e.Stream}, {"group", e.Group}, {"subject", e.Subject}} {
		if v.name == "" && v.field != "subject" {
			errs = append(errs, fmt.Errorf("%s: is empty; name the environment variable that holds it", v.field))
		} else if v.name != "" && !envRE.MatchString(v.name) {
			errs = append(errs, fmt.Errorf("%s: got %q, expected an environment variable name such as ORDERS_STREAM", v.field, v.name))
		}
	}
	if e.Subject != "" && kind == BrokerRedisStreams {
		errs = append(errs, errors.New("subject: redis-streams has no subjects; remove it"))
	}
	return errors.Join(errs...)
}

var (
	envRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hostPortRE = regexp.MustCompile(`^[A-Za-z0-9.\-]+:[0-9]{1,5}$|^\[[0-9a-fA-F:]+\]:[0-9]{1,5}$`)
)
