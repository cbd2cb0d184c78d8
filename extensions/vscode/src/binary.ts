// Which remocal binary the extension runs: the remocal.binaryPath setting,
// else the one shipped in the .vsix for this platform, else remocal on PATH.
import { accessSync, constants, statSync } from 'node:fs';
import * as path from 'node:path';

export interface BinaryChoice {
  path: string;
  /** Where the choice came from, for messages: "setting", "bundled", "PATH". */
  source: 'setting' | 'bundled' | 'PATH';
}

export class BinaryNotFound extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BinaryNotFound';
  }
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Looks name up in a PATH string as a shell would; undefined if absent. */
export function lookPath(name: string, pathEnv: string | undefined): string | undefined {
  if (name.includes('/')) {
    return isExecutable(name) ? path.resolve(name) : undefined;
  }
  for (const dir of (pathEnv ?? '').split(path.delimiter)) {
    if (dir === '') {
      continue;
    }
    const p = path.join(dir, name);
    if (isExecutable(p)) {
      return p;
    }
  }
  return undefined;
}

/** The bundled binary's place inside the extension, by platform. */
export function bundledPath(extensionPath: string, platform = process.platform, arch = process.arch): string {
  return path.join(extensionPath, 'bin', `${platform}-${arch}`, 'remocal');
}

export function chooseBinary(setting: string | undefined, extensionPath: string, pathEnv: string | undefined): BinaryChoice {
  const configured = setting?.trim();
  if (configured) {
    if (!isExecutable(configured)) {
      throw new BinaryNotFound(
        `remocal.binaryPath is ${JSON.stringify(configured)}, which is not an executable file: fix the setting, or clear it to use the remocal shipped with the extension`,
      );
    }
    return { path: configured, source: 'setting' };
  }
  const bundled = bundledPath(extensionPath);
  if (isExecutable(bundled)) {
    return { path: bundled, source: 'bundled' };
  }
  const onPath = lookPath('remocal', pathEnv);
  if (onPath) {
    return { path: onPath, source: 'PATH' };
  }
  throw new BinaryNotFound(
    `no remocal binary: this extension ships none for ${process.platform}-${process.arch} and remocal is not on PATH; install remocal (make build in its repository puts it in bin/remocal) and set remocal.binaryPath to it`,
  );
}
