// A debug adapter just big enough to launch a program: initialize, launch
// (program, args, env, cwd), output events for its stdout and stderr,
// exited and terminated when it ends, and disconnect that kills it. It runs
// inline in the extension host, so no adapter executable is involved and
// whatever remocal changes in the launch configuration is what it runs.
'use strict';
const vscode = require('vscode');
const { spawn } = require('node:child_process');

class FixtureAdapter {
  constructor() {
    this.emitter = new vscode.EventEmitter();
    this.onDidSendMessage = this.emitter.event;
    this.seq = 1;
    this.child = undefined;
  }

  send(msg) {
    this.emitter.fire({ seq: this.seq++, ...msg });
  }

  respond(req, body, message) {
    this.send({
      type: 'response', request_seq: req.seq, command: req.command,
      success: message === undefined, ...(message === undefined ? { body: body ?? {} } : { message }),
    });
  }

  event(event, body) {
    this.send({ type: 'event', event, body });
  }

  handleMessage(msg) {
    if (msg.type !== 'request') return;
    switch (msg.command) {
      case 'initialize':
        this.respond(msg, { supportsConfigurationDoneRequest: true, supportsTerminateRequest: true });
        this.event('initialized');
        return;
      case 'launch':
        this.launch(msg);
        return;
      case 'threads':
        this.respond(msg, { threads: [{ id: 1, name: 'program' }] });
        return;
      case 'disconnect':
      case 'terminate':
        this.kill();
        this.respond(msg);
        return;
      default:
        // configurationDone, setBreakpoints, setExceptionBreakpoints...:
        // accepted and ignored; this adapter has no breakpoints.
        this.respond(msg, msg.command === 'setBreakpoints' ? { breakpoints: [] } : {});
    }
  }

  launch(req) {
    const a = req.arguments ?? {};
    if (typeof a.program !== 'string' || a.program === '') {
      this.respond(req, undefined, 'remocal-fixture: the launch configuration needs "program"');
      return;
    }
    const env = { ...process.env };
    for (const [k, v] of Object.entries(a.env ?? {})) {
      if (v === null) delete env[k];
      else env[k] = String(v);
    }
    let child;
    try {
      child = spawn(a.program, Array.isArray(a.args) ? a.args.map(String) : [], {
        cwd: a.cwd || undefined, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (e) {
      this.respond(req, undefined, `remocal-fixture: cannot start ${a.program}: ${e.message}`);
      return;
    }
    this.child = child;
    let started = false;
    child.once('error', (e) => {
      if (!started) this.respond(req, undefined, `remocal-fixture: cannot start ${a.program}: ${e.message}`);
      this.event('output', { category: 'stderr', output: `remocal-fixture: ${e.message}\n` });
      this.event('terminated');
    });
    child.once('spawn', () => {
      started = true;
      this.event('process', { name: a.program, systemProcessId: child.pid, startMethod: 'launch' });
      this.respond(req);
    });
    child.stdout.setEncoding('utf8').on('data', (s) => this.event('output', { category: 'stdout', output: s }));
    child.stderr.setEncoding('utf8').on('data', (s) => this.event('output', { category: 'stderr', output: s }));
    child.once('close', (code, signal) => {
      this.child = undefined;
      this.event('exited', { exitCode: code ?? (signal ? 128 : 1) });
      this.event('terminated');
    });
  }

  kill() {
    const c = this.child;
    if (c?.pid === undefined) return;
    try {
      process.kill(-c.pid, 'SIGKILL'); // the program and what it started
    } catch {
      // already gone
    }
  }

  dispose() {
    this.kill();
  }
}

exports.activate = (context) => {
  context.subscriptions.push(vscode.debug.registerDebugAdapterDescriptorFactory('remocal-fixture', {
    createDebugAdapterDescriptor: () => new vscode.DebugAdapterInlineImplementation(new FixtureAdapter()),
  }));
};

exports.deactivate = () => {};
