// Runs extension tests inside a real VS Code: code-server's extension host,
// opened in Debian's chromium through playwright-core. Exits with the code
// the extension host reports through window.codeAutomationExit (0: the
// suite passed), 2 for a harness failure, 3 for a timeout.
//
// The suite running inside the extension host reaches this driver over a
// loopback HTTP server whose address is in REMOCAL_VSCODE_DRIVER: it asks for
// screenshots and for keys typed into the page (so a QuickPick opened by a
// command is answered through the real UI). Each request is answered only
// once the action is done, which is the whole handshake: no files to poll.
//
// Usage: node run.mjs --code-server BIN --playwright-core DIR --workspace DIR
//        --extension DIR [--install DIR...] --tests FILE --artifacts DIR
//        [--timeout SECONDS] [--run-dir DIR]
//
// --extension is the extension under development (the workbench takes one
// from the URL payload: it keeps only the last of a repeated key);
// --install puts more extension folders into the run's extensions dir, as
// if installed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { handleUI } from './ui.mjs';

const { values: opts } = parseArgs({
  options: {
    'code-server': { type: 'string' },
    workspace: { type: 'string' },
    extension: { type: 'string', multiple: true, default: [] },
    install: { type: 'string', multiple: true, default: [] },
    tests: { type: 'string' },
    artifacts: { type: 'string' },
    timeout: { type: 'string', default: '300' },
    'run-dir': { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    'playwright-core': { type: 'string' },
  },
});
for (const need of ['code-server', 'workspace', 'tests', 'artifacts', 'playwright-core']) {
  if (!opts[need]) fail(`missing --${need}; see the usage at the top of ${import.meta.filename}`);
}
if (opts.extension.length !== 1) fail('give exactly one --extension (the one under development); --install adds others');

const timeoutMs = Number(opts.timeout) * 1000;
const started = Date.now();
const log = (msg) => process.stderr.write(`[driver +${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);

function fail(msg) {
  process.stderr.write(`driver: ${msg}\n`);
  process.exit(2);
}

// Everything code-server and chromium write goes under one run folder with
// its own HOME and XDG dirs, so nothing of the machine's user leaks in and
// nothing of a run leaks out.
const runDir = opts['run-dir'] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'remocal-vscode-'));
const dirs = {
  home: path.join(runDir, 'home'),
  config: path.join(runDir, 'xdg-config'),
  data: path.join(runDir, 'xdg-data'),
  cache: path.join(runDir, 'xdg-cache'),
  runtime: path.join(runDir, 'xdg-runtime'),
  userData: path.join(runDir, 'user-data'),
  extensions: path.join(runDir, 'extensions'),
};
for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
fs.mkdirSync(opts.artifacts, { recursive: true });
writeUserSettings(path.join(dirs.userData, 'User', 'settings.json'));
for (const dir of opts.install) installExtension(dir);

let server; // code-server child (its own process group)
let browser;
let exiting = false;

// The whole process group: code-server forks the extension host, the pty
// host, file watchers and whatever the suite starts.
function killServer() {
  if (server?.pid === undefined) return;
  try {
    process.kill(-server.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
process.on('exit', killServer);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    finish(2);
  });
}

async function finish(code) {
  if (exiting) return;
  exiting = true;
  clearTimeout(deadline);
  try {
    await browser?.close();
  } catch (e) {
    log(`closing chromium: ${e.message}`);
  }
  killServer();
  // The server side's logs (extension host, pty host, remote agent).
  try {
    fs.cpSync(path.join(dirs.userData, 'logs'), path.join(opts.artifacts, 'server-logs'), { recursive: true });
  } catch (e) {
    log(`copying the server logs: ${e.message}`);
  }
  log(`exit ${code} after ${((Date.now() - started) / 1000).toFixed(1)}s`);
  process.exit(code);
}

const deadline = setTimeout(async () => {
  log(`timed out after ${opts.timeout}s waiting for the extension tests to finish`);
  await screenshot('timeout').catch((e) => log(`timeout screenshot: ${e.message}`));
  finish(3);
}, timeoutMs);

let page;
async function screenshot(name) {
  if (!page) throw new Error('no page yet');
  const safe = String(name).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80);
  const file = path.join(opts.artifacts, `${safe}.png`);
  await page.screenshot({ path: file, timeout: 15000 });
  log(`screenshot ${file}`);
  return file;
}

try {
  const control = await startControlServer();
  const url = await startCodeServer(control);
  await openWorkbench(url);
} catch (e) {
  log(`harness failure: ${e.stack ?? e}`);
  await screenshot('harness-failure').catch(() => {});
  finish(2);
}

// installExtension copies an extension folder into the extensions dir
// under the name VS Code gives installed extensions; VS Code scans the
// folder on start.
function installExtension(dir) {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const dest = path.join(dirs.extensions, `${pkg.publisher}.${pkg.name}-${pkg.version}`);
  fs.cpSync(dir, dest, { recursive: true });
  log(`installed ${pkg.publisher}.${pkg.name} from ${dir}`);
}

function writeUserSettings(file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const settings = {
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'workbench.enableExperiments': false,
    'security.workspace.trust.enabled': false,
    'telemetry.telemetryLevel': 'off',
    'extensions.autoUpdate': false,
    'extensions.autoCheckUpdates': false,
    'update.mode': 'none',
    'chat.disableAIFeatures': true,
    'debug.openDebug': 'neverOpen',
    'window.dialogStyle': 'custom',
    'terminal.integrated.enablePersistentSessions': false,
    'extensions.ignoreRecommendations': true,
    // The DOM renderer: the terminal's text is then in the page, where the
    // suites can wait for it (the WebGL one draws pixels only).
    'terminal.integrated.gpuAcceleration': 'off',
  };
  fs.writeFileSync(file, JSON.stringify(settings, null, 2));
}

// The suite's side channel: POST / with a JSON action (see ui.mjs).
async function startControlServer() {
  const srv = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => {
      body += c;
      if (body.length > 1 << 20) req.destroy();
    });
    req.on('end', async () => {
      let reply;
      let status = 200;
      try {
        const action = JSON.parse(body || '{}');
        if (!page) throw new Error('the page is not open yet');
        reply = await handleUI(page, action, { screenshot, log });
      } catch (e) {
        status = 500;
        reply = { error: String(e.message ?? e) };
      }
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(reply ?? {}));
    });
  });
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  srv.unref();
  return `http://127.0.0.1:${srv.address().port}`;
}

// Starts code-server on a port the kernel picks and returns the URL it
// prints once it listens (read from its log: no port guessing).
function startCodeServer(controlURL) {
  const env = { ...process.env };
  delete env.PORT; // code-server would listen there instead of --bind-addr
  for (const k of Object.keys(env)) if (k.startsWith('VSCODE_')) delete env[k];
  Object.assign(env, {
    HOME: dirs.home,
    XDG_CONFIG_HOME: dirs.config,
    XDG_DATA_HOME: dirs.data,
    XDG_CACHE_HOME: dirs.cache,
    XDG_RUNTIME_DIR: dirs.runtime,
    REMOCAL_VSCODE_DRIVER: controlURL,
  });
  const args = [
    opts['code-server'],
    '--auth', 'none',
    '--bind-addr', '127.0.0.1:0',
    '--user-data-dir', dirs.userData,
    '--extensions-dir', dirs.extensions,
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--ignore-last-opened',
    '--vscode-option', 'enable-smoke-test-driver',
  ];
  log(`starting code-server (${process.execPath} ${args.join(' ')})`);
  server = spawn(process.execPath, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  server.on('exit', (code, sig) => {
    if (!exiting) {
      log(`code-server exited (${code ?? sig}) before the tests finished`);
      finish(2);
    }
  });
  return new Promise((resolve, reject) => {
    let found = false;
    const onLine = (line) => {
      process.stderr.write(`[code-server] ${line}\n`);
      const m = !found && /HTTP server listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
      if (m) {
        found = true;
        resolve(m[1]);
      }
    };
    lines(server.stdout, onLine);
    lines(server.stderr, onLine);
    server.once('error', reject);
  });
}

function lines(stream, fn) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (c) => {
    buf += c;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      fn(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    if (buf.length > 64 * 1024) {
      fn(buf);
      buf = '';
    }
  });
}

async function openWorkbench(baseURL) {
  const { chromium } = await import(path.join(opts['playwright-core'], 'index.mjs'));
  const host = new URL(baseURL).host;
  const remote = (p) => `vscode-remote://${host}${path.resolve(p)}`;
  const payload = [
    ...opts.extension.map((e) => ['extensionDevelopmentPath', remote(e)]),
    ['extensionTestsPath', remote(opts.tests)],
  ];
  const url = `${baseURL}/?folder=${encodeURIComponent(path.resolve(opts.workspace))}` +
    `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
  // Root needs --no-sandbox; the run is already inside the test's network
  // namespace, so the browser reaches nothing but loopback.
  browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    env: { ...process.env, HOME: dirs.home, XDG_CONFIG_HOME: dirs.config, XDG_CACHE_HOME: dirs.cache },
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  page = await context.newPage();
  // Informational console lines also arrive through codeAutomationLog.
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') process.stderr.write(`[browser ${m.type()}] ${m.text()}\n`);
  });
  page.on('pageerror', (e) => process.stderr.write(`[browser pageerror] ${e.message}\n`));
  await page.exposeFunction('codeAutomationLog', (level, args) => {
    process.stderr.write(`[workbench ${level}] ${Array.isArray(args) ? args.join(' ') : args}\n`);
  });
  await page.exposeFunction('codeAutomationExit', async (code, logs) => {
    log(`extension host exited with ${code}`);
    saveLogs(logs);
    await screenshot('final').catch((e) => log(`final screenshot: ${e.message}`));
    finish(typeof code === 'number' ? code : 2);
  });
  log(`opening ${url}`);
  await page.goto(url, { timeout: 60000 });
}

// The workbench hands over its log files on exit; they are the first thing
// to read when a run fails.
function saveLogs(logs) {
  if (!Array.isArray(logs)) return;
  const dir = path.join(opts.artifacts, 'logs');
  for (const { relativePath, contents } of logs) {
    const file = path.join(dir, String(relativePath).replace(/\.\.+/g, '_'));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, contents);
  }
}
