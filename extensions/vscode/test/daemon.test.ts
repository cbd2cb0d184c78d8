// The TypeScript daemon client against the real daemon of this checkout:
// `remocal daemon --stdio` built from ./cmd/remocal (or $REMOCAL_BIN),
// with a runtime directory and HOME of the test's own, so it starts a
// daemon of its own with only the local provider (no kubeconfig). No root
// needed: the daemon runs no sessions here.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';

import { Connection } from '../src/connection';
import { type ClientOptions, DaemonClient, DaemonError, DaemonUnavailable } from '../src/daemon';
import { describeError } from '../src/errors';
import { problemSpan, starterConfig } from '../src/problems';
import {
  checkConfigResult, checkDaemonInfo, checkNamespacesResult, checkNull, checkSessionListResult, checkTargetsResult, ErrorCodes, Methods,
} from '../src/protocol';
import { startWithProgress } from '../src/startProgress';
import { incompatibility } from '../src/version';
import { waitFor } from './waitFor';

const repoRoot = path.resolve(__dirname, '../../../..');
const pkg = JSON.parse(readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8')) as { remocalProtocol: string };
const tmp = mkdtempSync(path.join(os.tmpdir(), 'remocal-vscode-daemon-'));
const runtimeDir = path.join(tmp, 'run');
const home = path.join(tmp, 'home');
const workspace = path.join(tmp, 'workspace');
let binary = process.env.REMOCAL_BIN ?? '';
const log: string[] = [];
const children: ChildProcess[] = [];
let daemonPid = 0;

function options(more: Partial<ClientOptions> = {}): ClientOptions {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, XDG_RUNTIME_DIR: runtimeDir };
  return {
    binary, clientName: 'vscode-remocal', clientVersion: '0.0.0-test', neededProtocol: pkg.remocalProtocol,
    workspaceFolders: [{ uri: `file://${workspace}`, name: 'workspace' }], log: (l) => log.push(l), env, ...more,
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

before(() => {
  mkdirSync(runtimeDir, { mode: 0o700 });
  mkdirSync(home);
  mkdirSync(path.join(workspace, '.remocal'), { recursive: true });
  if (binary === '') {
    binary = path.join(tmp, 'remocal');
    execFileSync('/usr/local/go/bin/go', ['build', '-o', binary, './cmd/remocal'], { cwd: repoRoot, stdio: 'inherit' });
  }
});

after(async () => {
  for (const c of children) {
    c.kill('SIGKILL');
  }
  // The test's daemon would otherwise linger for its idle timeout.
  try {
    const c = await DaemonClient.start(options());
    await c.request(Methods.daemonShutdown, { force: true }, checkNull).catch(() => null);
    c.dispose();
  } catch {
    // Already gone.
  }
  if (daemonPid > 0) {
    await waitFor('the test daemon to exit', () => (alive(daemonPid) ? undefined : true));
  }
  rmSync(tmp, { recursive: true, force: true });
});

test('initialize reports the protocol version the extension needs', async () => {
  const c = await DaemonClient.start(options());
  try {
    // The daemon of this tree may be a minor ahead of what the extension
    // needs (minors only add): compatible, and the same in both places.
    assert.equal(incompatibility(pkg.remocalProtocol, c.protocolVersion, 'remocal'), undefined);
    assert.notEqual(c.serverVersion, '');
    const info = await c.request(Methods.daemonInfo, undefined, checkDaemonInfo);
    assert.equal(info.protocolVersion, c.protocolVersion);
    assert.ok(info.clients >= 1);
    assert.equal(info.sessions, 0);
    assert.ok(info.socket.startsWith(runtimeDir), `socket ${info.socket} is not in the test's runtime directory`);
    daemonPid = info.pid;
  } finally {
    await c.shutdown();
  }
});

test('a daemon older than needed is refused with both versions and the fix', async () => {
  await assert.rejects(DaemonClient.start(options({ neededProtocol: '1.99' })), (e: unknown) => {
    assert.ok(e instanceof DaemonUnavailable);
    assert.ok(e.permanent);
    assert.match(e.message, /speaks daemon protocol 1\.[0-9]+, and this extension needs 1\.99: update remocal/);
    return true;
  });
});

test('a missing binary says to install remocal or set remocal.binaryPath', async () => {
  await assert.rejects(DaemonClient.start(options({ binary: path.join(tmp, 'no-such-remocal') })),
    (e: unknown) => e instanceof DaemonUnavailable && e.permanent && /ENOENT.*remocal\.binaryPath/.test(e.message));
});

test('namespaces, local targets and the session list decode', async () => {
  const sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
  children.push(sleeper);
  const c = await DaemonClient.start(options());
  try {
    const ns = await c.request(Methods.namespaces, undefined, checkNamespacesResult);
    assert.ok(ns.namespaces.some((n) => n.name === 'local' && n.provider === 'local'), JSON.stringify(ns));
    // The local provider rescans processes every 2 s: wait for ours.
    const mine = await waitFor(`pid/${sleeper.pid} among the local targets`, async () => {
      const r = await c.request(Methods.targets, { namespace: 'local', kinds: ['pid'] }, checkTargetsResult);
      return r.targets.find((t) => t.ref === `pid/${sleeper.pid}`);
    });
    assert.equal(mine.kind, 'pid');
    assert.equal(mine.provider, 'local');
    assert.match(mine.description ?? '', /sleep 300/);
    const list = await c.request(Methods.sessionList, undefined, checkSessionListResult);
    assert.deepEqual(list.sessions, []);
  } finally {
    await c.shutdown();
    sleeper.kill();
  }
});

test('errors carry the daemon code and reason, and read as messages', async () => {
  const c = await DaemonClient.start(options());
  try {
    await assert.rejects(c.request(Methods.sessionStop, { id: 's-nope' }, checkNull), (e: unknown) => {
      assert.ok(e instanceof DaemonError);
      assert.equal(e.code, ErrorCodes.sessionNotFound);
      assert.equal(e.reason, 'session_not_found');
      assert.match(describeError('stopping session s-nope', e).message, /^remocal: stopping session s-nope failed: /);
      return true;
    });
    await assert.rejects(c.request('remocal/no/such', {}, checkNull),
      (e: unknown) => e instanceof DaemonError && e.code === ErrorCodes.methodNotFound);
  } finally {
    await c.shutdown();
  }
});

test('configuration problems come with positions that map into the file', async () => {
  const file = path.join(workspace, '.remocal', 'config.json');
  const text = '{\n  "target": "pid/1",\n  "network": { "incoming": { "mode": "copy" } }\n}\n';
  writeFileSync(file, text);
  const c = await DaemonClient.start(options());
  try {
    const r = await c.request(Methods.configVerify, { workspaceFolder: workspace }, checkConfigResult);
    assert.equal(r.file, file);
    assert.equal(r.valid, false);
    const p = r.problems.find((x) => x.path === '$.network.incoming.mode');
    assert.ok(p, JSON.stringify(r.problems));
    const s = problemSpan(p, text.split('\n'));
    assert.equal(text.split('\n')[s.line].slice(s.character, s.endCharacter), '"copy"');
    // The starter file the extension writes is valid as it is.
    writeFileSync(file, starterConfig({ ref: 'deployment/inventory', namespace: 'shop' }));
    const ok = await c.request(Methods.configVerify, { workspaceFolder: workspace }, checkConfigResult);
    assert.deepEqual(ok.problems, []);
    assert.equal(ok.valid, true);
  } finally {
    await c.shutdown();
    rmSync(file);
  }
});

test('the connection notices a killed daemon and reconnects on the next use', async () => {
  const conn = Connection.fromOptions(() => options());
  const disconnects: string[] = [];
  conn.onDisconnected((r) => disconnects.push(r));
  try {
    const first = await conn.request(Methods.daemonInfo, undefined, checkDaemonInfo);
    process.kill(first.pid, 'SIGKILL');
    await waitFor('the connection to notice', () => (disconnects.length > 0 ? true : undefined));
    assert.equal(conn.connected, false);
    assert.match(disconnects[0], /exited|closed/);
    // The next use starts a new daemon.
    const second = await conn.request(Methods.daemonInfo, undefined, checkDaemonInfo);
    assert.notEqual(second.pid, first.pid);
    assert.ok(conn.connected);
    daemonPid = second.pid;
  } finally {
    await conn.stop();
  }
});

// A Kubernetes API server that accepts connections and never answers: a
// session start on one of its targets hangs in its first API call.
async function silentAPIServer(): Promise<{ url: string; sockets: net.Socket[]; open: () => number; close: () => Promise<void> }> {
  const sockets: net.Socket[] = [];
  let closed = 0;
  const srv = net.createServer((s) => {
    sockets.push(s);
    s.on('close', () => { closed++; });
    s.on('error', () => undefined);
    s.resume(); // read (and drop) the request, answer nothing
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, sockets, open: () => sockets.length - closed,
    close: () => {
      for (const s of sockets) {
        s.destroy();
      }
      return new Promise((resolve) => srv.close(() => { resolve(); }));
    },
  };
}

test('a start hung on the cluster is cancelled through the progress cancel: -32800, no session, connection released', async () => {
  const api = await silentAPIServer();
  const kubeconfig = path.join(tmp, 'silent.kubeconfig');
  writeFileSync(kubeconfig, [
    'apiVersion: v1', 'kind: Config', 'current-context: silent',
    `clusters: [{name: silent, cluster: {server: "${api.url}"}}]`,
    'users: [{name: nobody, user: {}}]',
    'contexts: [{name: silent, context: {cluster: silent, user: nobody, namespace: default}}]', '',
  ].join('\n'));
  const folder = path.join(tmp, 'cancel-ws');
  mkdirSync(folder, { recursive: true });
  const conn = Connection.fromOptions(() => options());
  const shown: Array<{ first: string; reports: string[]; cancel: () => void }> = [];
  try {
    const start = startWithProgress(conn, {
      target: 'deployment/api', namespace: 'default', workspaceFolder: folder, label: 'cancel test',
      overrides: { kubernetes: { kubeconfig } },
    }, (first, cancel) => {
      const s = { first, reports: [] as string[], cancel };
      shown.push(s);
      return { report: (m) => { s.reports.push(m); } };
    }, undefined, 200);
    const outcome = start.then(() => 'resolved', (e: unknown) => e);
    // Shown as long-running, and hung in the API server.
    const view = await waitFor('the start to be shown as long-running', () => shown[0]);
    await waitFor('the session host to connect to the silent API server', () => (api.open() > 0 ? true : undefined));
    const listed = await conn.request(Methods.sessionList, undefined, checkSessionListResult);
    assert.equal(listed.sessions.length, 1, JSON.stringify(listed));
    assert.equal(listed.sessions[0].state, 'starting');
    // The daemon's steps ($/progress) reach the view.
    const steps = await waitFor('the daemon\'s step in the progress view', () => {
      const all = [view.first, ...view.reports];
      return all.some((m) => m.includes('connecting to deployment/api')) ? all : undefined;
    });
    view.cancel();
    const e = await outcome;
    assert.ok(e instanceof DaemonError, `the start ended with ${String(e)}`);
    assert.equal(e.code, ErrorCodes.requestCancelled, e.message);
    assert.ok(steps.length > 0);
    await waitFor('the cancelled session to leave the list', async () => {
      const r = await conn.request(Methods.sessionList, undefined, checkSessionListResult);
      return r.sessions.length === 0 ? true : undefined;
    });
    await waitFor('the connection to the API server to be released', () => (api.open() === 0 ? true : undefined));
    assert.ok(api.sockets.length > 0);
  } finally {
    await conn.stop();
    await api.close();
  }
});
