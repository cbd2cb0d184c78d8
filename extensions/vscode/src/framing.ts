// A guard in front of vscode-jsonrpc's reader: it follows the LSP framing of
// the daemon's output (Content-Length headers, then the body) and fails the
// stream when a message announces more than the daemon's own limit, so a
// broken or hostile daemon cannot make the extension host buffer without
// bound. Bytes pass through unchanged.
import { Transform, type TransformCallback } from 'node:stream';

/** The daemon's limit for one message (docs/daemon-protocol.md). */
export const maxMessageBytes = 16 << 20;
const maxHeaderBytes = 8 << 10;

export class FrameGuard extends Transform {
  private header = '';
  private bodyLeft = 0;

  constructor(private readonly limit = maxMessageBytes) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.scan(chunk);
    } catch (e) {
      done(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    done(null, chunk);
  }

  private scan(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, chunk.length - i);
        this.bodyLeft -= n;
        i += n;
        continue;
      }
      // Headers are a few dozen bytes and may straddle chunks: take them
      // byte by byte until the blank line.
      this.header += String.fromCharCode(chunk[i]);
      i++;
      if (this.header.length > maxHeaderBytes) {
        throw new Error(`the daemon sent a message header over ${maxHeaderBytes} bytes; restart it (remocal: Restart Daemon)`);
      }
      if (!this.header.endsWith('\r\n\r\n')) {
        continue;
      }
      const m = /(?:^|\r\n)content-length:\s*(\d+)/i.exec(this.header);
      this.header = '';
      if (!m) {
        throw new Error('the daemon sent a message without Content-Length; restart it (remocal: Restart Daemon)');
      }
      const len = Number(m[1]);
      if (len > this.limit) {
        throw new Error(`the daemon sent a message of ${len} bytes, over the limit of ${this.limit}; restart it (remocal: Restart Daemon) and report this`);
      }
      this.bodyLeft = len;
    }
  }
}
