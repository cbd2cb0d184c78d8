// A second daemon client, as a script would be: `remocal daemon --stdio`
// spawned by the test and spoken to in JSON-RPC with LSP framing, written
// out here (not the extension's code) so the test does not share the
// extension's bugs.
'use strict';
const { spawn } = require('node:child_process');

const maxMessage = 16 << 20;

class Client {
  constructor(binary, env) {
    this.proc = spawn(binary, ['daemon', '--stdio'], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.nextId = 1;
    this.pending = new Map();
    this.notes = []; // every notification received: {method, params}
    this.noteListeners = new Set();
    this.stderr = '';
    this.buf = Buffer.alloc(0);
    this.proc.stdout.on('data', (c) => this.onData(c));
    this.proc.stderr.setEncoding('utf8').on('data', (s) => {
      this.stderr = (this.stderr + s).slice(-8192);
    });
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, sig) => {
      const err = new Error(`remocal daemon --stdio exited (${code ?? sig}): ${this.stderr.trim()}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      resolve();
    }));
  }

  onData(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const m = /Content-Length: *(\d+)/i.exec(this.buf.subarray(0, end).toString('ascii'));
      if (!m || Number(m[1]) > maxMessage) {
        this.proc.kill('SIGKILL');
        return;
      }
      const len = Number(m[1]);
      if (this.buf.length < end + 4 + len) return;
      const msg = JSON.parse(this.buf.subarray(end + 4, end + 4 + len).toString('utf8'));
      this.buf = this.buf.subarray(end + 4 + len);
      this.dispatch(msg);
    }
  }

  dispatch(msg) {
    if (msg.id !== undefined && msg.method !== undefined) {
      // A request from the daemon (e.g. window/workDoneProgress/create).
      this.write({ jsonrpc: '2.0', id: msg.id, result: null });
    } else if (msg.id !== undefined) {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (!p) return;
      if (msg.error) {
        const e = new Error(`${p.method}: ${msg.error.message} (${msg.error.code})`);
        e.data = msg.error.data;
        p.reject(e);
      } else {
        p.resolve(msg.result);
      }
    } else if (msg.method) {
      const n = { method: msg.method, params: msg.params };
      this.notes.push(n);
      for (const l of this.noteListeners) l(n);
    }
  }

  write(msg) {
    const body = Buffer.from(JSON.stringify(msg), 'utf8');
    this.proc.stdin.write(`Content-Length: ${body.length}\r\n\r\n`);
    this.proc.stdin.write(body);
  }

  request(method, params, timeoutMs = 60000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer from the daemon within ${timeoutMs / 1000}s`));
      }, timeoutMs);
      this.pending.set(id, {
        method,
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.write({ jsonrpc: '2.0', id, method, params });
    });
  }

  notify(method, params) {
    this.write({ jsonrpc: '2.0', method, params });
  }

  async initialize(folders) {
    const result = await this.request('initialize', {
      processId: process.pid,
      clientInfo: { name: 'vscode-e2e-second-client', version: '0.0.1' },
      capabilities: {},
      workspaceFolders: folders.map((f) => ({ uri: `file://${f}`, name: f.split('/').pop() })),
    });
    this.notify('initialized', {});
    return result;
  }

  async close() {
    try {
      await this.request('shutdown', null, 5000);
      this.notify('exit', null);
    } catch {
      // the daemon may be gone; the process is killed below anyway
    }
    this.proc.stdin.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

module.exports = { Client };
