// Command grpcecho is a gRPC server and client for remocal's tests of
// HTTP/2 routing: real grpc-go on both ends, with a service written out by
// hand (no code generation) over protobuf's wrapper messages.
//
//	grpcecho serve -listen :9090 -name app
//	grpcecho call -addr 10.77.0.10:9090 -calls 'unary:alice:hi;stream:bob:20;bidi::5'
//
// serve prints "listening ADDR" once it accepts. Its service
// remocal.test.Echo answers every call with its name in the header and the
// trailer x-served-by, so a test sees who answered; it also serves the gRPC
// health service. call runs every call of -calls at once on one connection
// and prints one JSON line per call (callResult).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// chunkSize is the size of each streamed message: large enough that a
// stream of them crosses flow-control windows many times.
const chunkSize = 48 << 10

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: grpcecho serve|call [flags]")
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "call":
		call(os.Args[2:])
	default:
		log.Fatalf("grpcecho: unknown command %q", os.Args[1])
	}
}

// echoServer implements remocal.test.Echo.
type echoServer struct{ name string }

func (e *echoServer) stamp(ctx context.Context) {
	grpc.SetHeader(ctx, metadata.Pairs("x-served-by", e.name))
	grpc.SetTrailer(ctx, metadata.Pairs("x-served-by", e.name))
}

// unary answers "NAME: MSG"; the message "fail" is refused with
// PermissionDenied, to carry a status other than OK.
func (e *echoServer) unary(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	e.stamp(ctx)
	if in.Value == "fail" {
		return nil, status.Errorf(codes.PermissionDenied, "%s refuses", e.name)
	}
	return wrapperspb.String(e.name + ": " + in.Value), nil
}

// stream sends N chunks (N is the request), each chunkSize bytes of
// chunk(i).
func (e *echoServer) stream(in *wrapperspb.StringValue, ss grpc.ServerStream) error {
	e.stamp(ss.Context())
	n, err := strconv.Atoi(in.Value)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "count %q: %v", in.Value, err)
	}
	for i := range n {
		if err := ss.SendMsg(wrapperspb.Bytes(chunk(i))); err != nil {
			return err
		}
	}
	return nil
}

// bidi answers every message with "NAME: MSG".
func (e *echoServer) bidi(ss grpc.ServerStream) error {
	e.stamp(ss.Context())
	for {
		in := new(wrapperspb.StringValue)
		if err := ss.RecvMsg(in); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := ss.SendMsg(wrapperspb.String(e.name + ": " + in.Value)); err != nil {
			return err
		}
	}
}

// chunk is the i-th streamed message: a pattern a corrupted, reordered or
// truncated stream cannot reproduce.
func chunk(i int) []byte {
	b := make([]byte, chunkSize)
	seed := sha256.Sum256([]byte(strconv.Itoa(i)))
	for j := range b {
		b[j] = seed[j%len(seed)] ^ byte(j>>5)
	}
	return b
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "remocal.test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(srv any, ctx context.Context, dec func(any) error, intercept grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, req any) (any, error) {
				return srv.(*echoServer).unary(ctx, req.(*wrapperspb.StringValue))
			}
			if intercept == nil {
				return h(ctx, in)
			}
			return intercept(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/remocal.test.Echo/Unary"}, h)
		},
	}},
	Streams: []grpc.StreamDesc{
		{StreamName: "Stream", ServerStreams: true, Handler: func(srv any, ss grpc.ServerStream) error {
			in := new(wrapperspb.StringValue)
			if err := ss.RecvMsg(in); err != nil {
				return err
			}
			return srv.(*echoServer).stream(in, ss)
		}},
		{StreamName: "Bidi", ServerStreams: true, ClientStreams: true, Handler: func(srv any, ss grpc.ServerStream) error {
			return srv.(*echoServer).bidi(ss)
		}},
	},
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	name := fs.String("name", "server", "name reported in x-served-by")
	unhealthy := fs.Bool("not-serving", false, "the health service answers NOT_SERVING (tells a test who answered a probe)")
	fs.Parse(args)
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer(grpc.ChainUnaryInterceptor(logUnary), grpc.ChainStreamInterceptor(logStream))
	s.RegisterService(&echoDesc, &echoServer{name: *name})
	hs := health.NewServer()
	if *unhealthy {
		hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	}
	healthpb.RegisterHealthServer(s, hs)
	fmt.Printf("listening %s\n", l.Addr())
	if err := s.Serve(l); err != nil {
		log.Fatal(err)
	}
}

// logCall prints "call METHOD user=USER" for every call, for tests to wait
// on (a mirrored call has no answer to look at).
func logCall(ctx context.Context, method string) {
	md, _ := metadata.FromIncomingContext(ctx)
	fmt.Printf("call %s user=%s\n", method, first(md, "x-user"))
}

func logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	logCall(ctx, info.FullMethod)
	return h(ctx, req)
}

func logStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	logCall(ss.Context(), info.FullMethod)
	return h(srv, ss)
}

// callResult is what call prints for each call.
type callResult struct {
	Call     int      `json:"call"`
	Kind     string   `json:"kind"`
	User     string   `json:"user"`
	Header   string   `json:"header"`  // x-served-by of the response header
	Trailer  string   `json:"trailer"` // x-served-by of the trailer
	Code     string   `json:"code"`
	Message  string   `json:"message"`
	Replies  []string `json:"replies,omitempty"`
	Received int      `json:"received"` // streamed chunks received intact
	Corrupt  bool     `json:"corrupt"`  // a chunk differed from chunk(i)
}

func call(args []string) {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	calls := fs.String("calls", "unary::hello", "KIND:USER:ARG;... (unary: message, stream: count, bidi: messages, health: service)")
	timeout := fs.Duration("timeout", 30*time.Second, "deadline of every call")
	fs.Parse(args)
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent("grpcecho"))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	specs := strings.Split(*calls, ";")
	results := make([]callResult, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		parts := strings.SplitN(spec, ":", 3)
		if len(parts) != 3 {
			log.Fatalf("call %q: want KIND:USER:ARG", spec)
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), *timeout)
			defer cancel()
			results[i] = runCall(ctx, conn, parts[0], parts[1], parts[2])
			results[i].Call = i
		})
	}
	wg.Wait()
	enc := json.NewEncoder(os.Stdout)
	for _, r := range results {
		enc.Encode(r)
	}
}

func runCall(ctx context.Context, conn *grpc.ClientConn, kind, user, arg string) callResult {
	res := callResult{Kind: kind, User: user}
	if user != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-user", user)
	}
	var header, trailer metadata.MD
	var err error
	switch kind {
	case "unary":
		out := new(wrapperspb.StringValue)
		err = conn.Invoke(ctx, "/remocal.test.Echo/Unary", wrapperspb.String(arg), out, grpc.Header(&header), grpc.Trailer(&trailer))
		if err == nil {
			res.Replies = []string{out.Value}
		}
	case "health":
		out := new(healthpb.HealthCheckResponse)
		err = conn.Invoke(ctx, "/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{Service: arg}, out, grpc.Header(&header), grpc.Trailer(&trailer))
		if err == nil {
			res.Replies = []string{out.Status.String()}
		}
	case "stream":
		header, trailer, err = streamCall(ctx, conn, arg, &res)
	case "bidi":
		header, trailer, err = bidiCall(ctx, conn, arg, &res)
	default:
		log.Fatalf("unknown call kind %q", kind)
	}
	st := status.Convert(err)
	res.Code, res.Message = st.Code().String(), st.Message()
	res.Header, res.Trailer = first(header, "x-served-by"), first(trailer, "x-served-by")
	return res
}

func first(md metadata.MD, k string) string {
	if v := md.Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}

var (
	streamDesc = &grpc.StreamDesc{StreamName: "Stream", ServerStreams: true}
	bidiDesc   = &grpc.StreamDesc{StreamName: "Bidi", ServerStreams: true, ClientStreams: true}
)

// streamCall asks for n chunks and checks each one.
func streamCall(ctx context.Context, conn *grpc.ClientConn, n string, res *callResult) (metadata.MD, metadata.MD, error) {
	cs, err := conn.NewStream(ctx, streamDesc, "/remocal.test.Echo/Stream")
	if err != nil {
		return nil, nil, err
	}
	if err := cs.SendMsg(wrapperspb.String(n)); err != nil {
		return nil, nil, err
	}
	cs.CloseSend()
	for i := 0; ; i++ {
		m := new(wrapperspb.BytesValue)
		if err = cs.RecvMsg(m); err != nil {
			break
		}
		if string(m.Value) != string(chunk(i)) {
			res.Corrupt = true
		}
		res.Received++
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	h, _ := cs.Header()
	return h, cs.Trailer(), err
}

// bidiCall sends n messages one at a time, each after the previous answer.
func bidiCall(ctx context.Context, conn *grpc.ClientConn, n string, res *callResult) (metadata.MD, metadata.MD, error) {
	count, err := strconv.Atoi(n)
	if err != nil {
		log.Fatalf("bidi count %q: %v", n, err)
	}
	cs, err := conn.NewStream(ctx, bidiDesc, "/remocal.test.Echo/Bidi")
	if err != nil {
		return nil, nil, err
	}
	for i := range count {
		if err = cs.SendMsg(wrapperspb.String(fmt.Sprint("m", i))); err != nil {
			break
		}
		out := new(wrapperspb.StringValue)
		if err = cs.RecvMsg(out); err != nil {
			break
		}
		res.Replies = append(res.Replies, out.Value)
	}
	if err == nil {
		cs.CloseSend()
		if err = cs.RecvMsg(new(wrapperspb.StringValue)); errors.Is(err, io.EOF) {
			err = nil
		}
	}
	h, _ := cs.Header()
	return h, cs.Trailer(), err
}
