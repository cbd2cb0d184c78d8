// Package wire is the contract between a remocal client (the interposition
// layer, the daemon, the demo) and a remocal agent running beside a target.
//
// A connection starts with a preamble and a handshake on the raw byte stream:
//
//	client → agent: preamble "remocal\n", then a Hello frame
//	agent → client: preamble "remocal\n", then a Welcome frame or an Error frame
//
// After a successful handshake both sides run a yamux session over the same
// byte stream. The first stream the client opens is the control stream: it
// carries requests and responses (env, files, subscriptions) correlated by
// envelope ID, so many requests may be in flight and complete out of order.
//
// Every proxied connection gets a stream of its own, so one busy connection
// never delays file or DNS traffic behind it:
//
//   - client-opened "dial" streams: a Dial header, a DialResult or Error reply,
//     then raw bytes (TCP) or length-prefixed datagrams (UDP);
//   - agent-opened "incoming.connection" streams: one per redirected
//     connection; raw bytes in both directions for steal, direction-tagged
//     chunks from the agent for mirror;
//   - agent-opened "incoming.request" streams: one per HTTP request matched by
//     a filtered subscription; the agent writes the request, a stealing client
//     writes the response.
//
// Frames are a 4-byte big-endian length followed by a JSON envelope. JSON keeps
// the contract readable and identical across the Go, TypeScript and Java
// sides; bulk data never travels in frames but on raw streams.
//
// Decoders accept unknown fields so that a newer minor version may add them;
// the Welcome's capability list, not field presence, says what a peer does.
package wire
