package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestWriteCommand(t *testing.T) {
	var b bytes.Buffer
	if err := writeCommand(&b, "RPUSH", "items", "a b\r\nc", ""); err != nil {
		t.Fatal(err)
	}
	want := "*4\r\n$5\r\nRPUSH\r\n$5\r\nitems\r\n$6\r\na b\r\nc\r\n$0\r\n\r\n"
	if got := b.String(); got != want {
		t.Fatalf("encoded %q, want %q", got, want)
	}
	if err := writeCommand(&b); err == nil {
		t.Fatal("empty command was accepted")
	}
}

func TestReadValue(t *testing.T) {
	tests := []struct {
		in   string
		want respValue
	}{
		{"+PONG\r\n", respValue{Kind: '+', Str: "PONG"}},
		{"-ERR wrong type\r\n", respValue{Kind: '-', Str: "ERR wrong type"}},
		{":-42\r\n", respValue{Kind: ':', Int: -42}},
		{"$5\r\nhe\r\no\r\n", respValue{Kind: '$', Str: "he\r\no"}},
		{"$0\r\n\r\n", respValue{Kind: '$', Str: ""}},
		{"$-1\r\n", respValue{Kind: '$', Null: true}},
		{"*-1\r\n", respValue{Kind: '*', Null: true}},
		{"*0\r\n", respValue{Kind: '*', Array: []respValue{}}},
		{"*3\r\n$1\r\na\r\n:7\r\n*1\r\n+x\r\n", respValue{Kind: '*', Array: []respValue{
			{Kind: '$', Str: "a"},
			{Kind: ':', Int: 7},
			{Kind: '*', Array: []respValue{{Kind: '+', Str: "x"}}},
		}}},
	}
	for _, tt := range tests {
		r := bufio.NewReader(strings.NewReader(tt.in))
		got, err := readValue(r)
		if err != nil {
			t.Errorf("readValue(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("readValue(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if _, err := r.ReadByte(); err != io.EOF {
			t.Errorf("readValue(%q) left input unread", tt.in)
		}
	}
}

func TestReadValueRejectsMalformed(t *testing.T) {
	for _, in := range []string{
		"",               // nothing at all
		"+OK",            // no terminator
		"+OK\n",          // LF only
		"?what\r\n",      // unknown type
		":12x\r\n",       // bad integer
		"$3\r\nab\r\n",   // bulk shorter than announced
		"$2\r\nabc\r\n",  // bulk longer than announced
		"$-2\r\n",        // negative length
		"$999999999\r\n", // beyond the allocation cap
		"*2\r\n+a\r\n",   // array missing an element
		"\r\n",           // empty line
		strings.Repeat("*1\r\n", maxDepth+2) + "+x\r\n", // nesting bomb
	} {
		if v, err := readValue(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("readValue(%q) = %+v, want an error", in, v)
		}
	}
}

func TestRoundTripThroughCommandEncoding(t *testing.T) {
	// A command is itself a valid RESP array, so decoding our own encoding
	// must give back the arguments.
	args := []string{"LRANGE", "items", "0", "-1", "\x00binary\xff"}
	var b bytes.Buffer
	if err := writeCommand(&b, args...); err != nil {
		t.Fatal(err)
	}
	v, err := readValue(bufio.NewReader(&b))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range v.Array {
		got = append(got, e.Str)
	}
	if !reflect.DeepEqual(got, args) {
		t.Fatalf("round trip gave %q, want %q", got, args)
	}
}

// fakeRedis answers each connection's first command with a canned reply and
// records the command it decoded.
func fakeRedis(t *testing.T, reply string) (addr string, got <-chan []string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cmds := make(chan []string, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				v, err := readValue(bufio.NewReader(c))
				if err != nil {
					return
				}
				var args []string
				for _, e := range v.Array {
					args = append(args, e.Str)
				}
				cmds <- args
				io.WriteString(c, reply)
			}()
		}
	}()
	return l.Addr().String(), cmds
}

func TestRedisClient(t *testing.T) {
	addr, cmds := fakeRedis(t, "*2\r\n$3\r\nfoo\r\n$3\r\nbar\r\n")
	c := &redisClient{addr: addr, timeout: 5 * time.Second}
	v, err := c.do(context.Background(), "LRANGE", "items", "0", "-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Array) != 2 || v.Array[0].Str != "foo" || v.Array[1].Str != "bar" {
		t.Fatalf("reply %+v", v)
	}
	if got := <-cmds; !reflect.DeepEqual(got, []string{"LRANGE", "items", "0", "-1"}) {
		t.Fatalf("server saw %q", got)
	}
}

func TestRedisClientErrorReply(t *testing.T) {
	addr, _ := fakeRedis(t, "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
	c := &redisClient{addr: addr, timeout: 5 * time.Second}
	_, err := c.do(context.Background(), "RPUSH", "items", "x")
	var re redisError
	if !errors.As(err, &re) || !strings.HasPrefix(string(re), "WRONGTYPE") {
		t.Fatalf("err = %v, want a WRONGTYPE redisError", err)
	}
}
