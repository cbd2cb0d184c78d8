// The extension activates in a real extension host, reaches the daemon,
// and shows itself in the status bar.
'use strict';
const h = require('../lib/harness');

h.test('activates and connects to the daemon', async () => {
  const api = await h.remocal();
  h.assert(/^1\.\d+$/.test(api.protocolVersion), `protocolVersion ${JSON.stringify(api.protocolVersion)} is major.minor`);
  await h.waitFor('the extension to connect to the daemon', () => api.state().connected, 60000);
  const info = await api.request('remocal/daemon/info');
  h.assert(info && info.pid > 0, `remocal/daemon/info answered ${JSON.stringify(info)}`);
  h.assert(info.socket === h.context().daemonSocket,
    `the daemon listens on ${info.socket}, want the run's own ${h.context().daemonSocket}`);
});

h.test('the status bar item shows remocal', async () => {
  const api = await h.remocal();
  h.assert(api.statusBarText().startsWith('remocal:'), `statusBarText() = ${JSON.stringify(api.statusBarText())}`);
  const { texts } = await h.driver({ do: 'waitFor', selector: '.statusbar-item', hasText: 'remocal:' });
  h.assert(texts.some((t) => t.includes(api.statusBarText().replace(/^\$\([^)]*\)\s*/, ''))),
    `the page's status bar shows ${JSON.stringify(texts)}, the API says ${JSON.stringify(api.statusBarText())}`);
  await h.screenshot('status-bar-activated');
});
