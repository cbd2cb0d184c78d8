package wire

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Code categorises an error so that callers can react without parsing
// messages. Codes are stable; messages are for humans.
type Code string

const (
	// CodeInvalid: the request was malformed or failed validation.
	CodeInvalid Code = "invalid_request"
	// CodeIncompatibleVersion: the peers' protocol majors differ.
	CodeIncompatibleVersion Code = "incompatible_version"
	// CodeUnsupported: the peer does not implement the requested feature.
	CodeUnsupported Code = "unsupported"
	// CodeNotFound: a file, directory or target does not exist.
	CodeNotFound Code = "not_found"
	// CodePermissionDenied: the operation is not allowed.
	CodePermissionDenied Code = "permission_denied"
	// CodeConflict: another client holds what was asked for; Holder says who.
	CodeConflict Code = "conflict"
	// CodeTooLarge: a result would exceed a limit; retry in ranges.
	CodeTooLarge Code = "too_large"
	// CodeUnavailable: the target or its namespace is gone or unreachable.
	CodeUnavailable Code = "unavailable"
	// CodeConnection: a dial failed; Errno carries the kernel's reason.
	CodeConnection Code = "connection_failed"
	// CodeIO: a file operation failed with Errno.
	CodeIO Code = "io"
	// CodeInternal: a bug or unexpected condition in the agent.
	CodeInternal Code = "internal"
)

// Error is the error half of a response. Errno carries the Linux errno when
// the failure came from a system call, so that the interposition layer can
// hand the target program exactly the error the real call would have given.
type Error struct {
	Code    Code    `json:"code"`
	Message string  `json:"message"`
	Errno   int     `json:"errno,omitempty"`
	Holder  *Holder `json:"holder,omitempty"`
	// Policy names the operator policy that refused the request (since
	// 1.2, operator only), for clients to show and classify.
	Policy *PolicyViolation `json:"policy,omitempty"`
}

// PolicyViolation names a policy (protocol/policy) and the rule of it
// that refused a request.
type PolicyViolation struct {
	// Kind is RemocalPolicy (namespaced) or RemocalClusterPolicy.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Rule is the rule's path in the policy, such as
	// "incoming.blockSteal".
	Rule string `json:"rule"`
}

// Holder names who holds a contended resource, for conflict errors.
type Holder struct {
	Client       string      `json:"client"`
	Subscription string      `json:"subscription"`
	Port         uint16      `json:"port"`
	Mode         Mode        `json:"mode"`
	Filter       *HTTPFilter `json:"filter,omitempty"`
	// User, Session and Since are set by an operator (since 1.2): the
	// holder as Kubernetes authenticated them, their session, and when
	// they took the port.
	User    string     `json:"user,omitempty"`
	Session string     `json:"session,omitempty"`
	Since   *time.Time `json:"since,omitempty"`
}

func (e *Error) Error() string {
	if e.Errno != 0 {
		return fmt.Sprintf("%s: %s (errno %d)", e.Code, e.Message, e.Errno)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Is makes errors.Is(err, &Error{Code: c}) match on the code alone, and
// errors.Is(err, syscall.ENOENT) match on the errno.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *Error:
		return t.Code == e.Code
	case syscall.Errno:
		return e.Errno != 0 && syscall.Errno(e.Errno) == t
	}
	return false
}

// Errorf builds an Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FromErrno builds an Error that carries err's errno, if it has one.
func FromErrno(code Code, err error, format string, args ...any) *Error {
	e := &Error{Code: code, Message: fmt.Sprintf(format, args...) + ": " + err.Error()}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		e.Errno = int(errno)
		switch errno {
		case syscall.ENOENT:
			e.Code = CodeNotFound
		case syscall.EACCES, syscall.EPERM:
			e.Code = CodePermissionDenied
		}
	}
	return e
}

// AsError converts any error to an *Error, keeping codes of wrapped Errors.
func AsError(err error) *Error {
	var we *Error
	if errors.As(err, &we) {
		return we
	}
	return FromErrno(CodeInternal, err, "internal error")
}

// CodeOf returns err's code, or "" if err carries none.
func CodeOf(err error) Code {
	var we *Error
	if errors.As(err, &we) {
		return we.Code
	}
	return ""
}

// PolicyRuleFilesLocal is the policy rule (protocol/policy's files.local)
// that keeps paths on the developer's machine.
const PolicyRuleFilesLocal = "files.local"

// KeptLocal reports whether err refuses a file because a policy keeps its
// path on the developer's machine: the client then reads its own file
// rather than failing.
func KeptLocal(err error) bool {
	var we *Error
	return errors.As(err, &we) && we.Policy != nil && we.Policy.Rule == PolicyRuleFilesLocal
}
