package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/remocal/remocal/interpose/session"
	"github.com/remocal/remocal/protocol/daemon"
)

// restartHint follows the session's own message when it moved to a new pod
// (what the program keeps from the old one) with the command that starts
// the program afresh there, ready to paste.
func restartHint(w io.Writer, argv []string) func(session.Event) {
	return func(ev session.Event) {
		if ev.Kind != daemon.EventTargetMoved {
			return
		}
		fmt.Fprintf(w, "remocal: to restart with the new pod's, end the program and run: %s\n", shellJoin(argv))
	}
}

// shellJoin quotes each argument for a POSIX shell where it needs it.
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@%+") == "" {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
