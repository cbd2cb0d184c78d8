package queuesplit

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	f := &Filter{Headers: map[string]string{"tenant": "a"}, Body: map[string]string{"$.order.n": "[0-9]+", "$.items[1].sku": "B.*", "$.paid": "true"}}
	m, err := f.Compile()
	if err != nil {
		t.Fatal(err)
	}
	body := `{"order":{"n":17},"items":[{"sku":"A1"},{"sku":"B2"}],"paid":true}`
	for _, tc := range []struct {
		name    string
		headers map[string][]string
		body    string
		want    bool
	}{
		{"all match", map[string][]string{"tenant": {"a"}}, body, true},
		{"any header value", map[string][]string{"tenant": {"b", "a"}}, body, true},
		{"anchored header", map[string][]string{"tenant": {"ab"}}, body, false},
		{"header case kept", map[string][]string{"Tenant": {"a"}}, body, false},
		{"missing header", nil, body, false},
		{"number as text fails pattern", map[string][]string{"tenant": {"a"}}, strings.Replace(body, `17`, `"x"`, 1), false},
		{"index out of range", map[string][]string{"tenant": {"a"}}, strings.Replace(body, `,{"sku":"B2"}`, ``, 1), false},
		{"object at path", map[string][]string{"tenant": {"a"}}, strings.Replace(body, `17`, `{}`, 1), false},
		{"not JSON", map[string][]string{"tenant": {"a"}}, `tenant=a`, false},
		{"trailing garbage", map[string][]string{"tenant": {"a"}}, body + `{}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.Match(&Message{Headers: tc.headers, Body: []byte(tc.body)}); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
	var none *Matcher
	if !none.Match(&Message{}) {
		t.Error("a nil matcher (no filter) must match every message")
	}
}

func TestValidateSaysWhatIsWrong(t *testing.T) {
	for _, tc := range []struct {
		split Split
		want  []string
	}{
		{Split{}, []string{"consumer: is empty"}},
		{Split{Consumer: "Orders", Mode: "copy"}, []string{`consumer: got "Orders"`, `mode: got "copy", expected "steal" or "mirror"`}},
		{Split{Consumer: "w", Filter: &Filter{}}, []string{"filter: a filter needs headers or body"}},
		{Split{Consumer: "w", Filter: &Filter{Headers: map[string]string{"a b": "("}}}, []string{`header name "a b" is not valid`, `header "a b": pattern "(": error parsing regexp`}},
		{Split{Consumer: "w", Filter: &Filter{Body: map[string]string{"tenant": "a", "$.x[": "b", "$": "c", "$.a..b": "d"}}},
			[]string{`body path "tenant": a JSON path starts with "$"`, `body path "$.x[": unclosed "["`, `body path "$": the path "$" names the whole body`, `body path "$.a..b": expected a member name after "." at offset 3`}},
	} {
		err := tc.split.Validate()
		if err == nil {
			t.Errorf("%+v: no error, want %q", tc.split, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q does not say %q", tc.split, err, w)
			}
		}
	}
}

func TestConflicts(t *testing.T) {
	h := func(kv ...string) *Filter {
		f := &Filter{Headers: map[string]string{}}
		for i := 0; i < len(kv); i += 2 {
			f.Headers[kv[i]] = kv[i+1]
		}
		return f
	}
	steal := func(f *Filter) Split { return Split{Consumer: "w", Mode: ModeSteal, Filter: f} }
	for _, tc := range []struct {
		name string
		a, b Split
		want bool
	}{
		{"alice and bob", steal(h("tenant", "a")), steal(h("tenant", "b")), false},
		{"same filter", steal(h("tenant", "a")), steal(h("tenant", "a")), true},
		{"subset", steal(h("tenant", "a")), steal(h("tenant", "a", "region", "eu")), true},
		{"different names", steal(h("tenant", "a")), steal(h("region", "eu")), false},
		{"unfiltered steal", steal(nil), steal(h("tenant", "a")), true},
		{"mirror never", Split{Consumer: "w", Filter: h("tenant", "a")}, steal(h("tenant", "a")), false},
		{"mirror unfiltered", Split{Consumer: "w", Mode: ModeMirror}, steal(nil), false},
		{"other queue", steal(nil), Split{Consumer: "w", Queue: "q2", Mode: ModeSteal}, false},
		{"header and body are different names", steal(h("tenant", "a")), steal(&Filter{Body: map[string]string{"tenant": "a"}}), false},
		{"same body path", steal(&Filter{Body: map[string]string{"$.t": "a"}}), steal(&Filter{Body: map[string]string{"$.t": "a"}}), true},
	} {
		if got := Conflicts(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: Conflicts = %v, want %v", tc.name, got, tc.want)
		}
		if got := Conflicts(tc.b, tc.a); got != tc.want {
			t.Errorf("%s (swapped): Conflicts = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestConsumerValidate(t *testing.T) {
	bad := ConsumerSpec{
		Workload: Workload{Kind: "job", Name: "w"},
		Queues: []Queue{
			{Name: "q", Broker: Broker{Kind: "kafka", Address: "nowhere"}, Env: QueueEnv{Stream: "1X"}},
			{Name: "q", Broker: Broker{Kind: BrokerRedisStreams, Address: "r:6379", Credentials: &SecretRef{Name: "s"}}, Env: QueueEnv{Stream: "S", Group: "G", Subject: "X"}},
		},
	}
	err := bad.Validate()
	for _, w := range []string{
		`spec.workload.kind: got "job"`, `spec.queues[0].broker: kind: got "kafka"`, `address: got "nowhere"`,
		`spec.queues[0].env: stream: got "1X"`, "group: is empty", `spec.queues[1].name: "q" is declared twice`,
		"credentials.passwordKey: is empty", "subject: redis-streams has no subjects",
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not say %q", err, w)
		}
	}
}
