// Daemon protocol versions: "MAJOR.MINOR". The extension declares the one
// it needs in package.json ("remocalProtocol"); a daemon is compatible when
// it speaks the same major version and at least the minor one (minor
// versions only add methods and fields).

export interface ProtocolVersion { major: number; minor: number }

/** What a daemon that reports no version speaks: 1.0 predates the field. */
export const unversioned = '1.0';

export function parseVersion(v: string): ProtocolVersion | undefined {
  const m = /^(\d+)\.(\d+)$/.exec(v.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

/**
 * Checks a daemon's protocol version against the one needed. Returns
 * undefined when they fit, else a message for the user that names both
 * versions and what to do.
 */
export function incompatibility(needed: string, daemon: string | undefined, binary: string): string | undefined {
  const have = daemon ?? unversioned;
  const n = parseVersion(needed);
  const d = parseVersion(have);
  if (!n) {
    return `the extension declares an unreadable daemon protocol version ${JSON.stringify(needed)}; reinstall the extension`;
  }
  if (d && d.major === n.major && d.minor >= n.minor) {
    return undefined;
  }
  const fix = d && d.major > n.major
    ? 'update the remocal extension, or set remocal.binaryPath to a remocal of the same release as the extension'
    : 'update remocal (the binary the extension runs), or set remocal.binaryPath to a newer remocal';
  return `remocal at ${binary} speaks daemon protocol ${have}, and this extension needs ${needed}: ${fix}`;
}
