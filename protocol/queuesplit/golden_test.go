package queuesplit

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in protocol/testdata/queuesplit")

// vectorDir is shared with the IDEs' tests, which decode the same files.
const vectorDir = "../testdata/queuesplit"

var consumer = RemocalQueueConsumer{
	TypeMeta:   metav1.TypeMeta{APIVersion: SchemeGroupVersion.String(), Kind: Kind},
	ObjectMeta: metav1.ObjectMeta{Name: "orders-worker", Namespace: "shop"},
	Spec: ConsumerSpec{
		Workload: Workload{Kind: "deployment", Name: "orders-worker", Container: "worker"},
		Queues: []Queue{
			{Name: "orders", Broker: Broker{Kind: BrokerRedisStreams, Address: "redis.shop.svc:6379",
				Credentials: &SecretRef{Name: "redis-auth", PasswordKey: "password"}, BodyField: "payload"},
				Env: QueueEnv{Stream: "ORDERS_STREAM", Group: "ORDERS_GROUP"}},
			{Name: "invoices", Broker: Broker{Kind: BrokerNATSJetStream, Address: "nats.shop.svc:4222",
				Credentials: &SecretRef{Name: "nats-auth", UsernameKey: "user", PasswordKey: "password"}},
				Env: QueueEnv{Stream: "INVOICE_STREAM", Group: "INVOICE_DURABLE", Subject: "INVOICE_SUBJECT"}},
		},
	},
}

// splits is what .remocal/config.json's "queueSplits" holds.
var splits = []Split{
	{Consumer: "orders-worker", Queue: "orders", Mode: ModeSteal, Filter: &Filter{Headers: map[string]string{"tenant": "a"}}},
	{Consumer: "orders-worker", Queue: "invoices", Mode: ModeMirror, Filter: &Filter{
		Headers: map[string]string{"region": "eu-.*"}, Body: map[string]string{"$.customer.id": "42|43", "$.lines[0].sku": "A-.*"}}},
	{Consumer: "audit-worker"},
}

var vectors = map[string]any{
	"remocalqueueconsumer": &consumer,
	"remocalqueueconsumer-list": &RemocalQueueConsumerList{
		TypeMeta: metav1.TypeMeta{APIVersion: SchemeGroupVersion.String(), Kind: Kind + "List"},
		ListMeta: metav1.ListMeta{ResourceVersion: "7"}, Items: []RemocalQueueConsumer{consumer},
	},
	"splits": &splits,
}

func TestGoldenVectors(t *testing.T) {
	for name, obj := range vectors {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(obj, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			file := filepath.Join(vectorDir, name+".json")
			if *update {
				if err := os.MkdirAll(vectorDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./protocol/queuesplit -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s changed (-want +got):\n%s", file, cmp.Diff(string(want), string(got)))
			}
			back := reflect.New(reflect.TypeOf(obj).Elem()).Interface()
			d := json.NewDecoder(bytes.NewReader(want))
			d.DisallowUnknownFields()
			if err := d.Decode(back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(obj, back); diff != "" {
				t.Errorf("decoding %s (-vector +decoded):\n%s", file, diff)
			}
		})
	}
	if err := consumer.Spec.Validate(); err != nil {
		t.Errorf("the vector's consumer is invalid: %v", err)
	}
	for _, s := range splits {
		if err := s.Validate(); err != nil {
			t.Errorf("the vector's split %+v is invalid: %v", s, err)
		}
	}
}

func TestDeepCopySharesNothing(t *testing.T) {
	cp := consumer.DeepCopy()
	cp.Spec.Queues[0].Broker.Credentials.Name = "changed"
	cp.Spec.Queues[1].Env.Stream = "changed"
	if consumer.Spec.Queues[0].Broker.Credentials.Name == "changed" || consumer.Spec.Queues[1].Env.Stream == "changed" {
		t.Errorf("the copy shares memory with the original: %+v", consumer.Spec)
	}
	s := splits[1].Clone()
	s.Filter.Body["$.customer.id"] = "changed"
	if splits[1].Filter.Body["$.customer.id"] == "changed" {
		t.Error("Split.Clone shares the filter's maps")
	}
}
