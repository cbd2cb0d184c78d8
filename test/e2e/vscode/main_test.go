// Package vscode runs the VS Code extension (extensions/vscode) inside a
// real VS Code: code-server's extension host, opened in Debian's chromium
// through playwright-core (driver/run.mjs), with the in-host suites of
// suite/ against the real daemon and the local environment of
// internal/localenv. The test binary, and so code-server, chromium, the
// daemon and every debuggee, runs in a loopback-only network namespace
// (envtest.Main): the App pod is reachable only through remocal.
//
// The browser, Node 24 and code-server come from test/setup/vscode-host.sh
// (make vscode-e2e runs it); without them the test fails and says so.
package vscode_test

import (
	"testing"

	"github.com/remocal/remocal/test/envtest"
	"github.com/remocal/remocal/test/gobuild"
)

func TestMain(m *testing.M) {
	envtest.Main(m, gobuild.Cleanup)
}
