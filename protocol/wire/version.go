package wire

import "fmt"

// Version is the protocol version. Peers with different majors cannot talk;
// minors only add optional fields, messages and capabilities.
type Version struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
}

// Current is the version this build speaks.
var Current = Version{Major: 1, Minor: 2}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// CompatibleWith reports whether a peer speaking v can talk to one speaking
// other.
func (v Version) CompatibleWith(other Version) bool { return v.Major == other.Major }

// Capability names an optional feature. A peer uses a feature only when the
// other side listed it during the handshake.
type Capability string

const (
	CapEnv           Capability = "env"
	CapFiles         Capability = "files"
	CapDialTCP       Capability = "dial.tcp"
	CapDialUDP       Capability = "dial.udp"
	CapMirror        Capability = "incoming.mirror"
	CapSteal         Capability = "incoming.steal"
	CapHTTP1Filter   Capability = "incoming.http1-filter"
	CapTargetUTSInfo Capability = "target.hostname"
	// CapHTTP2: HTTP/2 (h2c, gRPC) streams are routed by HTTP filters one
	// by one (since 1.2). An agent that lists it delivers a matched stream
	// on an incoming.connection stream with Protocol ProtocolH2C; a client
	// that lists it relays such streams raw in mirror mode too. Agents do
	// not mirror HTTP/2 streams to clients that do not list it (an older
	// client would read the raw bytes as mirror chunks).
	CapHTTP2 Capability = "incoming.http2"
	// CapHTTP1Conn: stolen HTTP/1 requests of one peer connection share
	// one stream (IncomingConnection with Protocol ProtocolHTTP1), instead
	// of a stream per request (IncomingRequest). An agent uses it only
	// with a client that listed it; an agent that does not know it keeps
	// sending a stream per request, which such a client still serves.
	CapHTTP1Conn Capability = "incoming.http1-conn"
	// CapAuth: the agent holds a key and proved it in the Welcome; the
	// client must answer with Auth (auth.go). Listed by such agents only.
	CapAuth Capability = "auth.hmac-sha256"
	// CapOperator: the peer is remocal's operator, a broker in front of
	// the target's agents (since 1.2): it sends Welcome.Operator and
	// events, honours Subscribe.Override, and names holders with their
	// user, session and since. Listed by the operator only.
	CapOperator Capability = "operator"
)

// AllCapabilities lists what this build implements, in a stable order.
// CapAuth is not among them: an agent lists it only when it holds a key;
// nor is CapOperator, which only the operator lists.
var AllCapabilities = []Capability{
	CapEnv, CapFiles, CapDialTCP, CapDialUDP, CapMirror, CapSteal, CapHTTP1Filter, CapTargetUTSInfo, CapHTTP2,
	CapHTTP1Conn,
}

// HasCapability reports whether caps contains c.
func HasCapability(caps []Capability, c Capability) bool {
	for _, have := range caps {
		if have == c {
			return true
		}
	}
	return false
}
