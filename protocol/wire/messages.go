package wire

import (
	"fmt"
	"net/netip"
	"path"
	"strings"
)

// Message types. A request type T is answered by T+".result" or by an
// envelope of type "error".
const (
	TypeHello   = "hello"
	TypeWelcome = "welcome"
	TypeError   = "error"
	// TypeAuth answers a Welcome that lists CapAuth (auth.go).
	TypeAuth       = "auth"
	TypeAuthResult = "auth.result"

	TypePing       = "ping"
	TypePingResult = "ping.result"

	TypeEnvGet       = "env.get"
	TypeEnvGetResult = "env.get.result"

	TypeFileRead           = "file.read"
	TypeFileReadResult     = "file.read.result"
	TypeFileStat           = "file.stat"
	TypeFileStatResult     = "file.stat.result"
	TypeFileReadlink       = "file.readlink"
	TypeFileReadlinkResult = "file.readlink.result"
	TypeFileReaddir        = "file.readdir"
	TypeFileReaddirResult  = "file.readdir.result"
	TypeFileAccess         = "file.access"
	TypeFileAccessResult   = "file.access.result"

	TypeSubscribe         = "incoming.subscribe"
	TypeSubscribeResult   = "incoming.subscribe.result"
	TypeUnsubscribe       = "incoming.unsubscribe"
	TypeUnsubscribeResult = "incoming.unsubscribe.result"

	// Stream headers: the first frame of a yamux stream says what it carries.
	TypeDial               = "dial"
	TypeDialResult         = "dial.result"
	TypeIncomingConnection = "incoming.connection"
	TypeIncomingRequest    = "incoming.request"

	// TypeEvent is pushed by the server on the control stream with ID 0
	// (since 1.2): something happened that the client did not ask about
	// and should show at once, such as a port taken by an override.
	TypeEvent = "event"
)

// Limits shared by both sides.
const (
	// MaxFrameSize bounds any frame, so a corrupt or hostile length prefix
	// cannot make a peer allocate without limit.
	MaxFrameSize = 16 << 20
	// MaxReadSize bounds the data of one file.read; larger files are read in
	// ranges.
	MaxReadSize = 4 << 20
	// MaxHandshakeFrameSize bounds the frames read before the peer is known.
	MaxHandshakeFrameSize = 64 << 10
)

// Message is a body that can travel in an envelope.
type Message interface {
	MessageType() string
}

// validator is implemented by messages that can be malformed beyond JSON
// syntax. Decode runs it, so handlers only ever see valid messages.
type validator interface {
	Validate() error
}

// Hello opens a connection.
type Hello struct {
	Protocol     Version      `json:"protocol"`
	Client       ClientInfo   `json:"client"`
	Capabilities []Capability `json:"capabilities"`
	// Nonce is the client's challenge (NonceSize random bytes, since 1.1):
	// an agent that holds a key proves it over this nonce in the Welcome.
	Nonce []byte `json:"nonce,omitempty"`
}

// ClientInfo identifies a client to humans, e.g. in conflict errors.
type ClientInfo struct {
	// Name is who is connecting, such as "alice@laptop".
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// Session groups connections of one remocal session, if any. An
	// operator (CapOperator) resumes the session of that name.
	Session string `json:"session,omitempty"`
	// Host and Tool describe the client for humans (since 1.2): the
	// machine's host name and the program ("remocal exec", "vscode").
	Host string `json:"host,omitempty"`
	Tool string `json:"tool,omitempty"`
}

// Welcome accepts a connection.
type Welcome struct {
	Protocol     Version      `json:"protocol"`
	Agent        AgentInfo    `json:"agent"`
	Capabilities []Capability `json:"capabilities"`
	Target       TargetInfo   `json:"target"`
	// ClientID is how this agent names the client in conflicts and logs.
	ClientID string `json:"clientId"`
	// Nonce and Proof are set by an agent that holds a key (CapAuth): its
	// challenge to the client, and its proof of the key (AgentProof).
	Nonce []byte `json:"nonce,omitempty"`
	Proof []byte `json:"proof,omitempty"`
	// Operator is set by an operator (CapOperator, since 1.2): the
	// session it opened or resumed and where its traffic comes from.
	Operator *OperatorInfo `json:"operator,omitempty"`
}

// OperatorInfo describes the session an operator serves the client.
type OperatorInfo struct {
	// Session is the session's name; a client that reconnects names it
	// in Hello.Client.Session to resume it.
	Session string `json:"session"`
	// Pods are the target's pods whose incoming traffic the session
	// receives.
	Pods []string `json:"pods,omitempty"`
	// Primary is the pod whose environment, files and network the
	// session uses, and PrimaryReason why that one ("oldest ready pod").
	Primary       string `json:"primary,omitempty"`
	PrimaryReason string `json:"primaryReason,omitempty"`
}

// Auth proves the client holds the agent's key (ClientProof). It is the
// client's next frame after a Welcome listing CapAuth.
type Auth struct {
	Proof []byte `json:"proof"`
}

// AuthResult accepts an Auth; the agent answers a wrong proof with an Error
// (permission_denied) and closes the connection.
type AuthResult struct{}

// AgentInfo describes the agent process.
type AgentInfo struct {
	Version string `json:"version"`
	PID     int    `json:"pid"`
}

// TargetInfo describes what the agent serves.
type TargetInfo struct {
	// Name is the user-facing target reference, such as "pid/1234".
	Name     string `json:"name"`
	PID      int    `json:"pid"`
	Hostname string `json:"hostname,omitempty"`
}

// Ping checks liveness and measures round trips.
type Ping struct {
	Payload string `json:"payload,omitempty"`
}

// PingResult echoes the ping's payload.
type PingResult struct {
	Payload string `json:"payload,omitempty"`
}

// EnvGet asks for the target's environment. A variable is returned if its
// name matches any Include glob (all, when Include is empty) and no Exclude
// glob; see package protocol/glob for the syntax.
type EnvGet struct {
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
}

// EnvGetResult carries the selected variables.
type EnvGetResult struct {
	Vars map[string]string `json:"vars"`
}

// FileRead reads a file of the target. Length 0 reads the whole file; the
// agent answers too_large if that exceeds MaxReadSize, and the client then
// reads ranges.
type FileRead struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset,omitempty"`
	Length int64  `json:"length,omitempty"`
}

// FileReadResult carries file bytes. Size is the file's size when read, so a
// client reading in ranges knows when it is done.
type FileReadResult struct {
	Data []byte `json:"data"`
	Size int64  `json:"size"`
	EOF  bool   `json:"eof"`
}

// FileStat stats a path; NoFollow gives lstat semantics.
type FileStat struct {
	Path     string `json:"path"`
	NoFollow bool   `json:"noFollow,omitempty"`
}

// FileInfo mirrors struct stat. Mode holds the raw st_mode with type bits;
// times are Unix nanoseconds.
type FileInfo struct {
	Mode    uint32 `json:"mode"`
	Size    int64  `json:"size"`
	Ino     uint64 `json:"ino"`
	Dev     uint64 `json:"dev"`
	Rdev    uint64 `json:"rdev,omitempty"`
	Nlink   uint64 `json:"nlink"`
	UID     uint32 `json:"uid"`
	GID     uint32 `json:"gid"`
	Blksize int64  `json:"blksize"`
	Blocks  int64  `json:"blocks"`
	Atime   int64  `json:"atime"`
	Mtime   int64  `json:"mtime"`
	Ctime   int64  `json:"ctime"`
}

// FileReadlink reads a symbolic link.
type FileReadlink struct {
	Path string `json:"path"`
}

// FileReadlinkResult is the link's content, unresolved.
type FileReadlinkResult struct {
	Target string `json:"target"`
}

// FileReaddir lists a directory.
type FileReaddir struct {
	Path string `json:"path"`
}

// FileReaddirResult lists entries other than "." and "..", sorted by name.
type FileReaddirResult struct {
	Entries []DirEntry `json:"entries"`
}

// DirEntry is one directory entry. Type is the dirent d_type (DT_REG = 8,
// DT_DIR = 4, DT_LNK = 10, ...).
type DirEntry struct {
	Name string `json:"name"`
	Type uint8  `json:"type"`
	Ino  uint64 `json:"ino"`
}

// FileAccess checks access(2) permissions (R_OK = 4, W_OK = 2, X_OK = 1,
// F_OK = 0) as the target process's credentials would see them.
type FileAccess struct {
	Path string `json:"path"`
	Mode uint32 `json:"mode"`
}

// FileAccessResult is empty: success is the answer.
type FileAccessResult struct{}

// Mode says what happens to incoming traffic of a subscription.
type Mode string

const (
	// ModeMirror copies traffic to the client; the target still answers.
	ModeMirror Mode = "mirror"
	// ModeSteal sends traffic to the client instead of the target.
	ModeSteal Mode = "steal"
)

// Subscribe asks for incoming traffic on a port of the target.
type Subscribe struct {
	Port   uint16      `json:"port"`
	Mode   Mode        `json:"mode"`
	Filter *HTTPFilter `json:"filter,omitempty"`
	// Override takes the port from whoever holds it (since 1.2, operator
	// only): the operator checks that the caller may, moves the lock and
	// tells the holder with a subscription.lost event. Agents ignore it.
	Override bool `json:"override,omitempty"`
}

// SubscribeResult names the new subscription.
type SubscribeResult struct {
	ID string `json:"id"`
}

// Unsubscribe ends a subscription; the port's redirect goes when its last
// subscription does.
type Unsubscribe struct {
	ID string `json:"id"`
}

// UnsubscribeResult is empty.
type UnsubscribeResult struct{}

// Dial heads a client-opened stream: connect to Address from inside the
// target's network. Address is numeric ("10.0.0.5:5432", "[fd00::1]:53"):
// names are resolved by the client with the target's DNS configuration.
type Dial struct {
	Network string `json:"network"`
	Address string `json:"address"`
}

// DialResult reports the connected socket's addresses as the target sees
// them.
type DialResult struct {
	Local  string `json:"local"`
	Remote string `json:"remote"`
}

// IncomingConnection heads an agent-opened stream carrying one redirected
// connection. Source is the peer that connected; Destination is the address
// it connected to, before redirection.
//
// Protocol is empty for the peer's own bytes (raw for steal, chunks for
// mirror). ProtocolH2C (since 1.2, CapHTTP2) means the agent routed the
// peer's HTTP/2 connection stream by stream: the stream carries a
// cleartext HTTP/2 connection the agent opened as its client, with only
// the peer's streams that matched this subscription. Its bytes are raw
// both ways in either mode; in mirror mode the agent discards the answers.
//
// ProtocolHTTP1 (CapHTTP1Conn) means the stream carries the HTTP/1.x
// requests of the peer's connection that this subscription steals, one
// after another: the agent writes a request, the client writes its whole
// response, then the agent may write the next. Steal mode only. Either
// side ends the exchange by closing the stream; a response that is not
// keep-alive (Connection: close) ends it too.
type IncomingConnection struct {
	Subscription string `json:"subscription"`
	Connection   uint64 `json:"connection"`
	Mode         Mode   `json:"mode"`
	Port         uint16 `json:"port"`
	Source       string `json:"source"`
	Destination  string `json:"destination"`
	Protocol     string `json:"protocol,omitempty"`
}

// ProtocolH2C is IncomingConnection.Protocol for a stream carrying HTTP/2
// streams of the peer's connection, re-framed by the agent as h2c.
const ProtocolH2C = "h2c"

// ProtocolHTTP1 is IncomingConnection.Protocol for a stream carrying the
// stolen HTTP/1.x requests of one peer connection in turn.
const ProtocolHTTP1 = "http1"

// Raw reports whether the stream's bytes are relayed as they are (no mirror
// chunks): stolen connections and HTTP/2 deliveries in either mode.
func (c *IncomingConnection) Raw() bool { return c.Mode == ModeSteal || c.Protocol == ProtocolH2C }

// HTTP1Requests reports whether the stream carries stolen HTTP/1 requests
// in turn (ProtocolHTTP1) rather than a connection's bytes.
func (c *IncomingConnection) HTTP1Requests() bool { return c.Protocol == ProtocolHTTP1 }

// IncomingRequest heads an agent-opened stream carrying one HTTP request that
// matched a filtered subscription. Request counts requests on the connection.
type IncomingRequest struct {
	Subscription string `json:"subscription"`
	Connection   uint64 `json:"connection"`
	Request      uint64 `json:"request"`
	Mode         Mode   `json:"mode"`
	Port         uint16 `json:"port"`
	Source       string `json:"source"`
	Destination  string `json:"destination"`
}

// Event kinds.
const (
	// EventSubscriptionLost: the subscription named in the event ended
	// without the client asking (another user overrode it; By says who).
	EventSubscriptionLost = "subscription.lost"
	// EventSessionEnded: the session was ended (deleted by a user or an
	// administrator, or the operator is stopping); the connection closes
	// after the event.
	EventSessionEnded = "session.ended"
	// EventPodsChanged: the pods the session receives traffic from
	// changed (a rollout, a scale up or down); Pods lists them now.
	EventPodsChanged = "pods.changed"
)

// Event is a server-pushed notice on the control stream, envelope ID 0.
// Clients show Message to the user; a client that does not know Kind
// shows the message and carries on.
type Event struct {
	Kind string `json:"kind"`
	// Subscription and Port say which subscription it is about, if any.
	Subscription string `json:"subscription,omitempty"`
	Port         uint16 `json:"port,omitempty"`
	// By names who caused it, for subscription.lost.
	By *Holder `json:"by,omitempty"`
	// Pods are the session's pods now, for pods.changed.
	Pods    []string `json:"pods,omitempty"`
	Message string   `json:"message"`
}

func (Hello) MessageType() string              { return TypeHello }
func (Welcome) MessageType() string            { return TypeWelcome }
func (Error) MessageType() string              { return TypeError }
func (Auth) MessageType() string               { return TypeAuth }
func (AuthResult) MessageType() string         { return TypeAuthResult }
func (Ping) MessageType() string               { return TypePing }
func (PingResult) MessageType() string         { return TypePingResult }
func (EnvGet) MessageType() string             { return TypeEnvGet }
func (EnvGetResult) MessageType() string       { return TypeEnvGetResult }
func (FileRead) MessageType() string           { return TypeFileRead }
func (FileReadResult) MessageType() string     { return TypeFileReadResult }
func (FileStat) MessageType() string           { return TypeFileStat }
func (FileInfo) MessageType() string           { return TypeFileStatResult }
func (FileReadlink) MessageType() string       { return TypeFileReadlink }
func (FileReadlinkResult) MessageType() string { return TypeFileReadlinkResult }
func (FileReaddir) MessageType() string        { return TypeFileReaddir }
func (FileReaddirResult) MessageType() string  { return TypeFileReaddirResult }
func (FileAccess) MessageType() string         { return TypeFileAccess }
func (FileAccessResult) MessageType() string   { return TypeFileAccessResult }
func (Subscribe) MessageType() string          { return TypeSubscribe }
func (SubscribeResult) MessageType() string    { return TypeSubscribeResult }
func (Unsubscribe) MessageType() string        { return TypeUnsubscribe }
func (UnsubscribeResult) MessageType() string  { return TypeUnsubscribeResult }
func (Dial) MessageType() string               { return TypeDial }
func (DialResult) MessageType() string         { return TypeDialResult }
func (IncomingConnection) MessageType() string { return TypeIncomingConnection }
func (IncomingRequest) MessageType() string    { return TypeIncomingRequest }
func (Event) MessageType() string              { return TypeEvent }

// registry maps a type name to a constructor of its body, for decoding.
var registry = map[string]func() Message{
	TypeHello:              func() Message { return &Hello{} },
	TypeWelcome:            func() Message { return &Welcome{} },
	TypeError:              func() Message { return &Error{} },
	TypeAuth:               func() Message { return &Auth{} },
	TypeAuthResult:         func() Message { return &AuthResult{} },
	TypePing:               func() Message { return &Ping{} },
	TypePingResult:         func() Message { return &PingResult{} },
	TypeEnvGet:             func() Message { return &EnvGet{} },
	TypeEnvGetResult:       func() Message { return &EnvGetResult{} },
	TypeFileRead:           func() Message { return &FileRead{} },
	TypeFileReadResult:     func() Message { return &FileReadResult{} },
	TypeFileStat:           func() Message { return &FileStat{} },
	TypeFileStatResult:     func() Message { return &FileInfo{} },
	TypeFileReadlink:       func() Message { return &FileReadlink{} },
	TypeFileReadlinkResult: func() Message { return &FileReadlinkResult{} },
	TypeFileReaddir:        func() Message { return &FileReaddir{} },
	TypeFileReaddirResult:  func() Message { return &FileReaddirResult{} },
	TypeFileAccess:         func() Message { return &FileAccess{} },
	TypeFileAccessResult:   func() Message { return &FileAccessResult{} },
	TypeSubscribe:          func() Message { return &Subscribe{} },
	TypeSubscribeResult:    func() Message { return &SubscribeResult{} },
	TypeUnsubscribe:        func() Message { return &Unsubscribe{} },
	TypeUnsubscribeResult:  func() Message { return &UnsubscribeResult{} },
	TypeDial:               func() Message { return &Dial{} },
	TypeDialResult:         func() Message { return &DialResult{} },
	TypeIncomingConnection: func() Message { return &IncomingConnection{} },
	TypeIncomingRequest:    func() Message { return &IncomingRequest{} },
	TypeEvent:              func() Message { return &Event{} },
}

// MessageTypes lists every message type, for tests and vector generators.
func MessageTypes() []string {
	types := make([]string, 0, len(registry))
	for t := range registry {
		types = append(types, t)
	}
	return types
}

func (h *Hello) Validate() error {
	if h.Protocol.Major <= 0 {
		return fmt.Errorf("hello.protocol.major must be positive, got %d", h.Protocol.Major)
	}
	if strings.TrimSpace(h.Client.Name) == "" {
		return fmt.Errorf("hello.client.name is empty; clients must say who they are so conflicts can name them")
	}
	if h.Nonce != nil && len(h.Nonce) != NonceSize {
		return fmt.Errorf("hello.nonce has %d bytes, want %d", len(h.Nonce), NonceSize)
	}
	return nil
}

func (w *Welcome) Validate() error {
	if (w.Nonce == nil) != (w.Proof == nil) {
		return fmt.Errorf("welcome.nonce and welcome.proof come together")
	}
	if w.Nonce != nil && len(w.Nonce) != NonceSize {
		return fmt.Errorf("welcome.nonce has %d bytes, want %d", len(w.Nonce), NonceSize)
	}
	return nil
}

func (a *Auth) Validate() error {
	if len(a.Proof) == 0 {
		return fmt.Errorf("auth.proof is empty")
	}
	return nil
}

func (r *FileRead) Validate() error {
	if err := validatePath(r.Path); err != nil {
		return err
	}
	if r.Offset < 0 || r.Length < 0 {
		return fmt.Errorf("offset and length must not be negative (got %d, %d)", r.Offset, r.Length)
	}
	if r.Length > MaxReadSize {
		return fmt.Errorf("length %d exceeds the %d byte limit of one read", r.Length, MaxReadSize)
	}
	return nil
}

func (r *FileStat) Validate() error     { return validatePath(r.Path) }
func (r *FileReadlink) Validate() error { return validatePath(r.Path) }
func (r *FileReaddir) Validate() error  { return validatePath(r.Path) }

func (r *FileAccess) Validate() error {
	if r.Mode&^7 != 0 {
		return fmt.Errorf("access mode %#o has bits other than R_OK|W_OK|X_OK", r.Mode)
	}
	return validatePath(r.Path)
}

func (r *EnvGet) Validate() error {
	for _, g := range append(append([]string(nil), r.Include...), r.Exclude...) {
		if g == "" {
			return fmt.Errorf("empty env glob; use \"*\" to match everything")
		}
	}
	return nil
}

func (s *Subscribe) Validate() error {
	if s.Port == 0 {
		return fmt.Errorf("port must be between 1 and 65535")
	}
	if s.Mode != ModeMirror && s.Mode != ModeSteal {
		return fmt.Errorf("mode %q is not %q or %q", s.Mode, ModeMirror, ModeSteal)
	}
	if s.Filter != nil {
		if err := s.Filter.Validate(); err != nil {
			return fmt.Errorf("filter: %w", err)
		}
	}
	return nil
}

func (e *Event) Validate() error {
	if e.Kind == "" {
		return fmt.Errorf("event.kind is empty")
	}
	return nil
}

func (u *Unsubscribe) Validate() error {
	if u.ID == "" {
		return fmt.Errorf("unsubscribe needs the subscription id")
	}
	return nil
}

func (d *Dial) Validate() error {
	switch d.Network {
	case "tcp", "udp":
	default:
		return fmt.Errorf("network %q is not \"tcp\" or \"udp\"", d.Network)
	}
	ap, err := netip.ParseAddrPort(d.Address)
	if err != nil {
		return fmt.Errorf("address %q is not a numeric ip:port (resolve names with the target's DNS first): %w", d.Address, err)
	}
	if ap.Port() == 0 {
		return fmt.Errorf("address %q has port 0", d.Address)
	}
	return nil
}

// validatePath accepts absolute paths without NUL bytes. The agent resolves
// them inside the target's root, so ".." cannot escape it; rejecting relative
// paths catches clients that forgot to resolve against their working
// directory.
func validatePath(p string) error {
	if p == "" {
		return fmt.Errorf("path is empty")
	}
	if !path.IsAbs(p) {
		return fmt.Errorf("path %q is not absolute", p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("path contains a NUL byte")
	}
	if len(p) > 4096 {
		return fmt.Errorf("path is longer than PATH_MAX (4096)")
	}
	return nil
}

// CheckDirEntryName says why name cannot be the name of one entry of a
// directory: empty, "." or "..", a "/" or NUL byte in it, or longer than
// NAME_MAX. The client joins entry names to local paths (a listing is
// materialised as a local skeleton), so a name an agent makes up must never
// lead outside that directory.
func CheckDirEntryName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("directory entry name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("directory entry name %q is not an entry", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("directory entry name %q contains a / or NUL byte", name)
	case len(name) > 255:
		return fmt.Errorf("directory entry name is longer than NAME_MAX (255)")
	}
	return nil
}
