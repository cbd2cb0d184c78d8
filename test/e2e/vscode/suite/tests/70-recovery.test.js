// The daemon killed mid-session: the extension notices and says so, and
// the next F5 works again (with a new daemon).
'use strict';
const h = require('../lib/harness');
const d = require('../lib/debug');

h.test('the daemon killed mid-session: noticed, said, recovered on the next F5', async () => {
  const api = await h.remocal();
  const { appPort, apiToken } = h.context();
  const since = h.mark();
  await d.start('node app');
  await d.waitOutput('node app', since, `app: listening on ${appPort}`, 90000);
  const { pid } = await h.control('/daemon/kill', {});
  h.assert(pid > 0, 'the control server killed the daemon');
  await h.waitFor('the extension to notice the daemon is gone', () => !api.state().connected, 30000);
  const texts = await h.notification('daemon');
  h.log(`notification: ${texts.join(' / ')}`);
  await h.screenshot('daemon-killed');
  await d.stopAll();
  const since2 = h.mark();
  await d.start('fixture dynamic');
  await d.waitTerminated('fixture dynamic', since2, 90000);
  h.assertIncludes(h.outputOf('fixture dynamic', since2), `API_TOKEN=${apiToken}`, 'fixture dynamic output after recovery');
  h.assert(api.state().connected, 'connected again');
  const info = await api.request('remocal/daemon/info');
  h.assert(info.pid !== pid, `a new daemon (pid ${info.pid}, the killed one was ${pid})`);
  await h.screenshot('daemon-recovered');
}, { timeoutMs: 180000 });
