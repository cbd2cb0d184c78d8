// F5 on a `node` launch configuration: the built-in js-debug, a real
// debugger, runs the app in the target's context. Stopped at a breakpoint
// the app's variables hold the target's env value and a file only the
// target has; requests sent to the target's port reach it mirrored (while
// it is stopped, the target still answers) or stolen (it answers).
'use strict';
const h = require('../lib/harness');
const d = require('../lib/debug');

const cfg = 'node app';
const cfgSteal = 'node app (steal)';

// activeSessions lists the daemon's sessions that are not over.
async function activeSessions(api) {
  const { sessions } = await api.request('remocal/session/list');
  return sessions.filter((s) => s.state !== 'ended');
}

h.test('F5 on the node configuration: breakpoint, target env and target-only file', async () => {
  const api = await h.remocal();
  const { nodeApp: app, apiToken, target } = h.context();
  d.breakpointAt(app, d.markerLine(app, 'BREAK-LOADED'));
  const since = h.mark();
  await d.startThroughUI(cfg);
  const stop = await d.waitStopped(cfg, since, 90000);
  const frame = await d.locals(stop);
  h.log(`stopped at ${frame.file}:${frame.line}: token=${frame.vars.token} config=${String(frame.vars.config).slice(0, 120)}`);
  h.assert(frame.line === d.markerLine(app, 'BREAK-LOADED'), `stopped at line ${frame.line} of ${frame.file}`);
  h.assertIncludes(frame.vars.token, apiToken, 'token (process.env.API_TOKEN)');
  h.assertIncludes(frame.vars.config, 'environment', 'config (/etc/inventory/config.json)');
  h.assertIncludes(frame.vars.config, 'remote', 'config (/etc/inventory/config.json)');
  await h.screenshot('node-breakpoint-target-values');
  // js-debug runs the program in a child session that goes through the
  // debug configuration providers again: still one remocal session.
  const active = await activeSessions(api);
  h.assert(active.length === 1 && active[0].target === target,
    `one remocal session on the target for one F5 (js-debug's child session must not start another), got ${JSON.stringify(active.map((s) => ({ id: s.id, label: s.label, incoming: s.incoming })))}`);
});

h.test('a mirrored request arrives while the debuggee is stopped at a breakpoint', async () => {
  const { nodeApp: app, appPort } = h.context();
  const since = h.mark();
  await d.start(cfg);
  await d.waitOutput(cfg, since, `app: listening on ${appPort}`, 60000);
  d.breakpointAt(app, d.markerLine(app, 'BREAK-REQUEST'));
  // The subscription is taken once the app listens; until the mirror is
  // in place a request only reaches the target, so send until one arrives.
  let n = 0;
  const stopped = d.waitStopped(cfg, since, 60000);
  const stop = await h.waitFor('a mirrored request to stop the debuggee', async () => {
    const res = await h.control('/send', { path: `/mirror-${++n}`, timeoutMs: 10000 });
    h.assert(res.status > 0 && !res.body.includes('from the debuggee'),
      `mirror mode: the target itself answers, got ${JSON.stringify(res)}`);
    return Promise.race([stopped, new Promise((r) => setTimeout(r, 1000))]);
  }, 45000);
  const frame = await d.locals(stop);
  h.assertIncludes(frame.vars.seen, 'GET /mirror-', 'seen (the mirrored request) at BREAK-REQUEST');
  // Stopped, the debuggee answers nothing; the target answers for it.
  const res = await h.control('/send', { path: '/while-stopped', timeoutMs: 10000 });
  h.assert(res.status > 0 && !res.body.includes('from the debuggee'), `the target answers while the debuggee is stopped: ${JSON.stringify(res)}`);
  await h.screenshot('node-mirror-stopped');
  d.clearBreakpoints();
  await d.cont(stop);
  await d.stopAll();
  const api = await h.remocal();
  await h.waitFor('the remocal session to end with the debug session', async () => (await activeSessions(api)).length === 0);
}, { timeoutMs: 150000 });

h.test('a stolen request is answered by the debuggee', async () => {
  const since = h.mark();
  await d.start(cfgSteal);
  await d.waitOutput(cfgSteal, since, `app: listening on ${h.context().appPort}`, 60000);
  let n = 0;
  const res = await h.waitFor('a stolen request answered by the debuggee', async () => {
    const r = await h.control('/send', { path: `/steal-${++n}`, timeoutMs: 10000 });
    return r.body.includes('from the debuggee: GET /steal-') && r;
  }, 45000);
  h.assert(res.status === 200, `status ${res.status}`);
  await h.screenshot('node-steal');
}, { timeoutMs: 150000 });
