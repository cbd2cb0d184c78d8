package daemon

import (
	"encoding/json"
	"fmt"

	"github.com/remocal/remocal/protocol/wire"
)

// Error codes of remocal/* methods. They are stable; messages are for
// humans. The JSON-RPC error's data carries {"reason": "<name>"} so clients
// can match on a name as well.
const (
	CodeNotInitialized  = -32002 // LSP ServerNotInitialized
	CodeInvalidParams   = -32602 // JSON-RPC invalid params
	CodeMethodNotFound  = -32601 // JSON-RPC method not found
	CodeInvalidConfig   = 1001
	CodeTargetNotFound  = 1002
	CodeSessionNotFound = 1003
	CodeConflict        = 1004
	CodeAgent           = 1005 // the agent could not be started or reached
	CodeUnsupported     = 1006 // this machine cannot run sessions
	CodeBusy            = 1007 // e.g. shutdown refused while sessions run
	CodeTargetRefused   = 1008 // remocal will not run a session there (kube-system, a static pod, ...)
	// CodeForbidden: the cluster's RBAC refused (1.1).
	CodeForbidden = 1009
	// CodeNoOperator: the request needs the cluster's remocal operator and
	// it has none (1.1).
	CodeNoOperator = 1010
	// CodePolicy: an operator policy refused (1.2); the data's policy
	// names it and the rule.
	CodePolicy   = 1011
	CodeInternal = 1099
)

var reasons = map[int]string{
	CodeNotInitialized: "not_initialized", CodeInvalidParams: "invalid_params", CodeMethodNotFound: "method_not_found",
	CodeInvalidConfig: "invalid_config", CodeTargetNotFound: "target_not_found", CodeSessionNotFound: "session_not_found",
	CodeConflict: "conflict", CodeAgent: "agent", CodeUnsupported: "unsupported", CodeBusy: "busy",
	CodeTargetRefused: "target_refused", CodeForbidden: "forbidden", CodeNoOperator: "no_operator", CodePolicy: "policy", CodeInternal: "internal",
}

// Reason names a code.
func Reason(code int) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	return "unknown"
}

// ErrorData is the data member of remocal errors.
type ErrorData struct {
	Reason   string    `json:"reason"`
	Problems []Problem `json:"problems,omitzero"`
	// Policy names the operator policy and rule, for reason policy.
	Policy *wire.PolicyViolation `json:"policy,omitzero"`
}

// Error is a remocal/* method failure, converted to a JSON-RPC error by the
// daemon.
type Error struct {
	Code     int
	Message  string
	Problems []Problem
	Policy   *wire.PolicyViolation
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an Error.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Data encodes the error's data member.
func (e *Error) Data() json.RawMessage {
	b, _ := json.Marshal(ErrorData{Reason: Reason(e.Code), Problems: e.Problems, Policy: e.Policy})
	return b
}
