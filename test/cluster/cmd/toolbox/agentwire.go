package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/remocal/remocal/protocol/wire"
)

// agentHello is a client of remocal's agent protocol without the agent's
// key: what an app or sidecar sharing the agent's network namespace can
// do. It sends the preamble and a Hello with a nonce, reads the Welcome,
// then either guesses a proof (-auth guess) or skips the proof and sends
// another message (-auth skip), and prints how the agent answers:
//
//	welcome agent=V auth=BOOL proof=BOOL
//	refused CODE: MESSAGE          (or "accepted", and exit 1)
//	closed by the agent
func agentHello(args []string) error {
	fs := flag.NewFlagSet("agent-hello", flag.ExitOnError)
	timeout := fs.Duration("timeout", 10*time.Second, "timeout for the whole exchange")
	name := fs.String("name", "intruder@toolbox", "client name in the Hello")
	mode := fs.String("auth", "guess", "after the welcome: guess (a random proof) or skip (another hello instead of auth)")
	_ = fs.Parse(args)
	if fs.NArg() != 1 || (*mode != "guess" && *mode != "skip") {
		return errors.New("usage: toolbox agent-hello [-timeout D] [-name N] [-auth guess|skip] HOST:PORT")
	}
	c, err := net.DialTimeout("tcp", fs.Arg(0), *timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(*timeout))
	hello := &wire.Hello{
		Protocol:     wire.Current,
		Client:       wire.ClientInfo{Name: *name, Session: "intruder"},
		Capabilities: wire.AllCapabilities,
		Nonce:        wire.NewNonce(),
	}
	if err := wire.WritePreamble(c); err != nil {
		return err
	}
	if err := wire.WriteMessage(c, 0, hello); err != nil {
		return err
	}
	if err := wire.ReadPreamble(c); err != nil {
		return err
	}
	w, err := wire.ReadMessage[*wire.Welcome](c, wire.MaxHandshakeFrameSize)
	if err != nil {
		return fmt.Errorf("reading the welcome: %w", err)
	}
	fmt.Printf("welcome agent=%s auth=%t proof=%t\n", w.Agent.Version, wire.HasCapability(w.Capabilities, wire.CapAuth), w.Proof != nil)
	switch *mode {
	case "guess":
		guess := make([]byte, 32)
		rand.Read(guess)
		err = wire.WriteMessage(c, 0, &wire.Auth{Proof: guess})
	case "skip":
		err = wire.WriteMessage(c, 0, hello)
	}
	if err != nil {
		return err
	}
	env, err := wire.ReadEnvelope(c, wire.MaxHandshakeFrameSize)
	switch {
	case err != nil:
		fmt.Printf("no answer: %v\n", err)
	case env.Type == wire.TypeError:
		fmt.Printf("refused %s: %s\n", env.Error.Code, env.Error.Message)
	default:
		fmt.Printf("accepted (%s)\n", env.Type)
		return errors.New("the agent accepted a client without its key")
	}
	// Nothing more comes: the agent closes the connection.
	if n, err := io.Copy(io.Discard, c); err != nil {
		return fmt.Errorf("after the refusal (%d bytes): %w", n, err)
	} else if n > 0 {
		return fmt.Errorf("the agent sent %d more bytes after refusing", n)
	}
	fmt.Println("closed by the agent")
	return nil
}

// fakeAgent binds an agent's address first and answers like an agent
// that holds no key (a Welcome without proof), recording what each client
// sends: a remocal client that holds the agent's key must stop after its
// Hello. Per connection it prints
//
//	connection from ADDR
//	hello from NAME nonce=N            (or what it got instead)
//	after the welcome: N bytes, then EOF|ERR
func fakeAgent(args []string) error {
	fs := flag.NewFlagSet("fake-agent", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:47113", "listen address")
	_ = fs.Parse(args)
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("fake agent listening on %s\n", l.Addr())
	go func() { waitSignal(); l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go fakeAgentConn(c)
	}
}

func fakeAgentConn(c net.Conn) {
	defer c.Close()
	fmt.Printf("connection from %s\n", c.RemoteAddr())
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := wire.ReadPreamble(c); err != nil {
		fmt.Printf("no preamble: %v\n", err)
		return
	}
	env, err := wire.ReadEnvelope(c, wire.MaxHandshakeFrameSize)
	if err != nil || env.Type != wire.TypeHello {
		fmt.Printf("not a hello: %v %v\n", env, err)
		return
	}
	var h wire.Hello
	if err := json.Unmarshal(env.Body, &h); err != nil {
		fmt.Printf("bad hello: %v\n", err)
		return
	}
	fmt.Printf("hello from %s nonce=%d\n", h.Client.Name, len(h.Nonce))
	w := &wire.Welcome{
		Protocol:     wire.Current,
		Agent:        wire.AgentInfo{Version: "impostor"},
		Capabilities: slices.DeleteFunc(slices.Clone(h.Capabilities), func(c wire.Capability) bool { return c == wire.CapAuth }),
		Target:       wire.TargetInfo{Name: "impostor", PID: 1},
		ClientID:     "impostor-1",
	}
	if err := wire.WritePreamble(c); err != nil {
		fmt.Printf("write: %v\n", err)
		return
	}
	if err := wire.WriteMessage(c, 0, w); err != nil {
		fmt.Printf("write: %v\n", err)
		return
	}
	n, err := io.Copy(io.Discard, c)
	end := "EOF"
	if err != nil {
		end = err.Error()
	}
	fmt.Printf("after the welcome: %d bytes, then %s\n", n, end)
}
