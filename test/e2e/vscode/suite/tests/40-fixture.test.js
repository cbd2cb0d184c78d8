// "Any debug type", shown: the fixture extension's own debug type
// (remocal-fixture, an inline adapter that just runs the program) gets the
// target's context too, with a dynamically linked program (env injected)
// and a static Go binary (the program replaced by the daemon's wrapper).
'use strict';
const h = require('../lib/harness');
const d = require('../lib/debug');

// launchRequest is the launch request the adapter received for name.
function launchRequest(name, since) {
  const m = h.debugMessages((x) => x.dir === 'in' && x.msg.command === 'launch' && h.rootName(x.session) === name, since).pop();
  if (!m) throw new Error(`no launch request seen for ${name}`);
  return m.msg.arguments;
}

for (const [kind, cfg] of [['dynamic', 'fixture dynamic'], ['static', 'fixture static']]) {
  h.test(`F5 on the fixture debug type with the ${kind} program`, async () => {
    const { apiToken, programs } = h.context();
    const since = h.mark();
    await d.start(cfg);
    await d.waitTerminated(cfg, since, 90000);
    const out = h.outputOf(cfg, since);
    h.assertIncludes(out, `args=${kind}`, `${cfg} output`);
    h.assertIncludes(out, `API_TOKEN=${apiToken}`, `${cfg} output`);
    h.assertIncludes(out, h.context().configMarker, `${cfg} output`);
    const launch = launchRequest(cfg, since);
    if (kind === 'static') {
      // A static binary cannot load the bootstrap library: the daemon
      // returns a wrapper and the extension runs it instead.
      h.assert(launch.program !== programs.static && (launch.args ?? []).includes(programs.static),
        `the static program runs through the wrapper: program ${launch.program}, args ${JSON.stringify(launch.args)}`);
    } else {
      h.assert(launch.program === programs.dynamic && launch.env?.LD_PRELOAD,
        `the dynamic program runs itself with the bootstrap library: ${JSON.stringify({ program: launch.program, env: launch.env })}`);
    }
  });
}
