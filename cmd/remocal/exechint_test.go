package main

import (
	"strings"
	"testing"

	"github.com/remocal/remocal/interpose/session"
	"github.com/remocal/remocal/protocol/daemon"
)

func TestRestartHintQuotesTheCommand(t *testing.T) {
	var out strings.Builder
	hint := restartHint(&out, []string{"remocal", "exec", "--target", "deploy/api", "--", "sh", "-c", "echo 'hi' $HOME", ""})
	hint(session.Event{Kind: daemon.EventAgentReconnected, Message: "reconnected"})
	if out.Len() != 0 {
		t.Fatalf("hint for a reconnection without a move: %q", out.String())
	}
	hint(session.Event{Kind: daemon.EventTargetMoved, Message: "moved"})
	want := `remocal: to restart with the new pod's, end the program and run: remocal exec --target deploy/api -- sh -c 'echo '\''hi'\'' $HOME' ''` + "\n"
	if out.String() != want {
		t.Errorf("hint:\n%s\nwant:\n%s", out.String(), want)
	}
}
