package supervisor

import (
	"bytes"
	"io"
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/remocal/remocal/interpose/internal/rules"
)

func query(t *testing.T, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestQueryName(t *testing.T) {
	noQuestion, _ := (&dnsmessage.Message{Header: dnsmessage.Header{ID: 1}}).Pack()
	for _, tc := range []struct {
		name     string
		msg      []byte
		wantName string
		wantType dnsmessage.Type
		ok       bool
	}{
		{"A", query(t, "db.shop.svc.cluster.local.", dnsmessage.TypeA), "db.shop.svc.cluster.local.", dnsmessage.TypeA, true},
		{"AAAA", query(t, "example.com.", dnsmessage.TypeAAAA), "example.com.", dnsmessage.TypeAAAA, true},
		{"SRV", query(t, "_http._tcp.api.", dnsmessage.TypeSRV), "_http._tcp.api.", dnsmessage.TypeSRV, true},
		{"no question", noQuestion, "", 0, false},
		{"empty", nil, "", 0, false},
		{"truncated header", []byte{0, 7, 1}, "", 0, false},
		{"truncated question", query(t, "example.com.", dnsmessage.TypeA)[:16], "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, typ, ok := queryName(tc.msg)
			if name != tc.wantName || typ != tc.wantType || ok != tc.ok {
				t.Errorf("queryName = %q, %v, %v; want %q, %v, %v", name, typ, ok, tc.wantName, tc.wantType, tc.ok)
			}
		})
	}
}

// The DNS filter decides per query name; a query that cannot be read goes
// to the target, which answers it as it would have without the filter.
func TestIsLocalQuery(t *testing.T) {
	for _, tc := range []struct {
		name          string
		remote, local []string
		msg           []byte
		want          bool
	}{
		{"local list match", nil, []string{"*.internal.example"}, query(t, "git.internal.example.", dnsmessage.TypeA), true},
		{"local list, case-insensitive", nil, []string{"*.internal.example"}, query(t, "GIT.Internal.Example.", dnsmessage.TypeA), true},
		{"local list miss", nil, []string{"*.internal.example"}, query(t, "db.shop.svc.cluster.local.", dnsmessage.TypeA), false},
		{"remote list match", []string{"*.cluster.local"}, nil, query(t, "db.shop.svc.cluster.local.", dnsmessage.TypeAAAA), false},
		{"remote list miss", []string{"*.cluster.local"}, nil, query(t, "github.com.", dnsmessage.TypeA), true},
		{"exact name", nil, []string{"registry.example"}, query(t, "registry.example.", dnsmessage.TypeA), true},
		{"suffix is not the name", nil, []string{"*.registry.example"}, query(t, "registry.example.", dnsmessage.TypeA), false},
		{"garbage", nil, []string{"*"}, []byte{1, 2, 3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Supervisor{cfg: Config{DNSNames: rules.NewDNSNames(tc.remote, tc.local)}}
			if got := s.isLocalQuery(tc.msg); got != tc.want {
				t.Errorf("isLocalQuery = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSplitsDNS(t *testing.T) {
	filter := rules.NewDNSNames(nil, []string{"*.corp"})
	for _, tc := range []struct {
		names *rules.DNSNames
		dest  string
		want  bool
	}{
		{filter, "10.96.0.10:53", true},
		{filter, "[fd00::a]:53", true},
		{filter, "10.96.0.10:5353", false},
		{filter, "10.0.0.1:443", false},
		{nil, "10.96.0.10:53", false}, // no filter: a plain relay
	} {
		s := &Supervisor{cfg: Config{DNSNames: tc.names}}
		if got := s.splitsDNS(netip.MustParseAddrPort(tc.dest)); got != tc.want {
			t.Errorf("splitsDNS(%s) with filter %v = %v, want %v", tc.dest, tc.names != nil, got, tc.want)
		}
	}
}

// DNS over TCP frames each message with its length, big-endian.
func TestTCPMessageFraming(t *testing.T) {
	for _, tc := range []struct {
		name  string
		msg   []byte
		frame []byte
	}{
		{"empty", []byte{}, []byte{0, 0}},
		{"short", []byte{0xab, 0xcd}, []byte{0, 2, 0xab, 0xcd}},
		{"300 bytes", bytes.Repeat([]byte{'x'}, 300), append([]byte{1, 44}, bytes.Repeat([]byte{'x'}, 300)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeTCPMessage(&buf, tc.msg); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), tc.frame) {
				t.Errorf("frame % x, want % x", buf.Bytes(), tc.frame)
			}
			got, err := readTCPMessage(&buf)
			if err != nil || !bytes.Equal(got, tc.msg) {
				t.Errorf("read back %q, %v", got, err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"nothing", nil, io.EOF},
		{"half a length", []byte{0}, io.ErrUnexpectedEOF},
		{"short body", []byte{0, 5, 1, 2}, io.ErrUnexpectedEOF},
		{"no body", []byte{0, 5}, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := readTCPMessage(bytes.NewReader(tc.in)); err != tc.want {
				t.Errorf("readTCPMessage(% x) error %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

// Types other than A and AAAA are answered locally without a lookup: an
// empty NOERROR response to the same question, with the query's ID.
func TestLocalAnswerWithoutLookup(t *testing.T) {
	s := &Supervisor{}
	for _, typ := range []dnsmessage.Type{dnsmessage.TypeTXT, dnsmessage.TypeMX, dnsmessage.TypeSRV} {
		t.Run(typ.String(), func(t *testing.T) {
			resp, err := s.localAnswer(query(t, "svc.corp.", typ))
			if err != nil {
				t.Fatal(err)
			}
			var m dnsmessage.Message
			if err := m.Unpack(resp); err != nil {
				t.Fatal(err)
			}
			h := m.Header
			if h.ID != 7 || !h.Response || !h.RecursionDesired || !h.RecursionAvailable || h.RCode != dnsmessage.RCodeSuccess {
				t.Errorf("header %+v", h)
			}
			if len(m.Questions) != 1 || m.Questions[0].Name.String() != "svc.corp." || m.Questions[0].Type != typ || len(m.Answers) != 0 {
				t.Errorf("questions %v answers %v", m.Questions, m.Answers)
			}
		})
	}
	for _, bad := range [][]byte{nil, {0, 1, 2}} {
		if _, err := s.localAnswer(bad); err == nil {
			t.Errorf("localAnswer(% x) answered a query it cannot read", bad)
		}
	}
}
