// Package envtest runs integration tests against a localenv environment:
// the test binary isolated from the machine's network, a fresh environment
// per test, and a goroutine leak check at the end.
package envtest

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/remocal/remocal/internal/localenv"
)

// Main is the TestMain of packages with integration tests:
//
//	func TestMain(m *testing.M) { envtest.Main(m) }
//
// It runs the tests isolated from the machine's network
// (localenv.RunIsolated) and, if they pass, fails the run when goroutines
// are left behind, since a leaked goroutine here usually means a leaked
// connection, listener or process. Each after function runs once the tests
// are done, before the leak check.
func Main(m *testing.M, after ...func()) {
	os.Exit(localenv.RunIsolated(func() int {
		code := m.Run()
		for _, f := range after {
			f()
		}
		if code != 0 {
			return code
		}
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "envtest: tests passed but leaked goroutines:\n%v\n", err)
			return 1
		}
		return 0
	}))
}

// New starts an environment for t and closes it when t ends. It skips t when
// the process lacks the privileges namespaces need.
func New(t testing.TB) *localenv.Env {
	t.Helper()
	RequireRoot(t)
	e, err := localenv.Start(t.Context(), localenv.Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// RequireRoot skips t unless the process can create network namespaces
// (root with CAP_SYS_ADMIN and CAP_NET_ADMIN).
func RequireRoot(t testing.TB) {
	t.Helper()
	if reason := localenv.MissingPrivileges(); reason != "" {
		t.Skip("localenv " + reason)
	}
}
