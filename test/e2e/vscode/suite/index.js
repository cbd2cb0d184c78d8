// The in-host test suite: VS Code loads this file in its extension host
// (extensionTestsPath) and exits with 0 when run() resolves, 1 when it
// rejects; the driver (driver/run.mjs) turns that into its exit code.
//
// A tiny runner instead of mocha: test files in tests/ register tests with
// harness.test(); they run one after another in file-name order (later
// tests build on the target picked by earlier ones). REMOCAL_VSCODE_SUITES
// (comma-separated file-name prefixes, e.g. "00,20") runs a subset.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const h = require('./lib/harness');
const d = require('./lib/debug');

exports.run = async function run() {
  const only = (process.env.REMOCAL_VSCODE_SUITES ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const dir = path.join(__dirname, 'tests');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort()
    .filter((f) => only.length === 0 || only.some((p) => f.startsWith(p)));
  if (files.length === 0) throw new Error(`no test file in ${dir} matches REMOCAL_VSCODE_SUITES=${only.join(',')}`);
  await h.setup();
  h.afterEach(async () => {
    d.clearBreakpoints();
    await d.stopAll();
  });
  for (const f of files) {
    h.currentFile(f);
    require(path.join(dir, f));
  }
  const results = await h.runAll();
  const failed = results.filter((r) => !r.ok);
  h.log(`${results.length - failed.length} passed, ${failed.length} failed`);
  for (const r of failed) h.log(`FAIL ${r.name}: ${r.error}`);
  await h.teardown();
  if (failed.length > 0) throw new Error(`${failed.length} of ${results.length} tests failed`);
};
