// The connection's backoff between failing attempts, with a fake clock and
// a factory that fails (the real reconnect is in daemon.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { backoffMs, Connection } from '../src/connection';
import { DaemonUnavailable } from '../src/daemon';

test('failing attempts back off, and the next attempt waits for it', async () => {
  let now = 1_000;
  let calls = 0;
  const conn = new Connection(() => {
    calls++;
    return Promise.reject(new DaemonUnavailable('no daemon'));
  }, () => now);
  assert.equal(conn.nextDelayMs(), 0);
  await assert.rejects(conn.get(), /no daemon/);
  assert.equal(conn.nextDelayMs(), backoffMs[0]);
  now += 100;
  assert.equal(conn.nextDelayMs(), backoffMs[0] - 100);
  now += backoffMs[0];
  assert.equal(conn.nextDelayMs(), 0);
  await assert.rejects(conn.get(), /no daemon/);
  assert.equal(conn.nextDelayMs(), backoffMs[1]);
  // Concurrent uses share one attempt.
  now += backoffMs[1];
  await Promise.allSettled([conn.get(), conn.get(), conn.get()]);
  assert.equal(calls, 3);
  // The delay stops growing at the last step.
  for (let i = 0; i < 10; i++) {
    now += 60_000;
    await assert.rejects(conn.get());
  }
  assert.equal(conn.nextDelayMs(), backoffMs[backoffMs.length - 1]);
  assert.equal(conn.connected, false);
});
