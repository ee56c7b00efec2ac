import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';

/**
 * The versions of socket.io, engine.io, ws, socket.io-parser and socket.io-adapter whose private fields
 * the socket fast path (packet-writer.ts, ack-reader.ts) was checked against,
 * and the versions this process actually loads, found the way Node finds them: socket.io from this
 * package, engine.io, socket.io-parser and socket.io-adapter from socket.io's own folder, ws from
 * engine.io's. A project pin or override does not say which copy socket.io ends up with (a nested
 * node_modules, an install without the lockfile, push-center installed as someone else's dependency,
 * where its `overrides` do not apply); this reads the package.json of the copy that is loaded.
 *
 * package.json pins these same versions and its `overrides` make the whole tree use them; the test
 * test/gateway/fast-path/versions.test.ts keeps the three in step. To move to a new version: check
 * packet-writer.ts and ack-reader.ts against its internals first, then change the list below.
 *
 * No dependencies, a handful of small file reads: meant to run once, at start-up.
 */

/** What the fast path has been checked against: nothing else says so. */
export const FAST_PATH_TESTED_VERSIONS = Object.freeze({
  'socket.io': '4.8.4',
  'engine.io': '6.6.12',
  ws: '8.21.3',
  'socket.io-parser': '4.2.7',
  'socket.io-adapter': '2.5.8',
} as const);

export type FastPathPackage = keyof typeof FAST_PATH_TESTED_VERSIONS;

export type FastPathVersions = Readonly<Record<FastPathPackage, string>>;

/** A package's loaded version, or null where it could not be found from the package that loads it. */
export type LoadedFastPathVersions = Readonly<Record<FastPathPackage, string | null>>;

export interface VersionMismatch {
  name: FastPathPackage;
  tested: string;
  /** null: not found where its parent (see `loadedFastPathVersions`) would load it from. */
  loaded: string | null;
}

/** Each package and the one whose folder it is resolved from (undefined: push-center itself). */
const LOADED_BY: ReadonlyArray<readonly [FastPathPackage, FastPathPackage | undefined]> = [
  ['socket.io', undefined],
  ['engine.io', 'socket.io'],
  ['ws', 'engine.io'],
  ['socket.io-parser', 'socket.io'],
  ['socket.io-adapter', 'socket.io'],
];

interface Located {
  /** The package's own package.json, from which its dependencies are resolved. */
  manifest: string;
  version: string;
}

/**
 * The versions of the fast path's packages this process loads. `from` is the module that loads
 * socket.io (this file by default, as the gateway does: the same node_modules lookup).
 */
export function loadedFastPathVersions(from: string | URL = import.meta.url): LoadedFastPathVersions {
  const found = new Map<FastPathPackage, Located | undefined>();
  const versions = {} as Record<FastPathPackage, string | null>;
  for (const [name, parent] of LOADED_BY) {
    const base = parent === undefined ? from : found.get(parent)?.manifest;
    const located = base === undefined ? undefined : locate(name, base);
    found.set(name, located);
    versions[name] = located?.version ?? null;
  }
  return versions;
}

/** The packages whose loaded version is not the tested one, in the order of `tested`. */
export function fastPathVersionMismatches(
  loaded: LoadedFastPathVersions = loadedFastPathVersions(),
  tested: FastPathVersions = FAST_PATH_TESTED_VERSIONS,
): VersionMismatch[] {
  const mismatches: VersionMismatch[] = [];
  for (const name of Object.keys(tested) as FastPathPackage[]) {
    const loadedVersion = loaded[name] ?? null;
    if (loadedVersion !== tested[name]) mismatches.push({ name, tested: tested[name], loaded: loadedVersion });
  }
  return mismatches;
}

/** One line for a log or a failed test: what changed, and what has to be checked before it is accepted. */
export function describeMismatch({ name, tested, loaded }: VersionMismatch): string {
  const change = loaded === null
    ? `${name}: the fast path is tested against ${tested}, but no ${name} is found where it is loaded from`
    : `${name} changed from ${tested} (tested) to ${loaded} (loaded)`;
  return `${change}: check src/gateway/fast-path/packet-writer.ts and src/gateway/fast-path/ack-reader.ts against the new ` +
    `${name} internals before updating the tested list in src/gateway/fast-path/tested-versions.ts ` +
    'and the pins in package.json';
}

/** `name` as a module at `base` (a file path or URL) would load it; undefined where it cannot be found. */
function locate(name: FastPathPackage, base: string | URL): Located | undefined {
  const require = createRequire(base);
  try {
    const located = read(require.resolve(`${name}/package.json`), name);
    if (located) return located;
  } catch {
    // Its `exports` may not list package.json (engine.io, socket.io-parser): walk up from its entry.
  }
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch {
    return undefined;
  }
  for (let dir = dirname(entry); ; dir = dirname(dir)) {
    // Build folders may have a package.json of their own ({"type": "commonjs"}): the package's names it.
    const located = read(join(dir, 'package.json'), name);
    if (located) return located;
    if (dirname(dir) === dir || basename(dir) === 'node_modules') return undefined;
  }
}

function read(manifest: string, name: string): Located | undefined {
  let pkg: { name?: unknown; version?: unknown };
  try {
    pkg = JSON.parse(readFileSync(manifest, 'utf8')) as typeof pkg;
  } catch {
    return undefined;
  }
  return pkg.name === name && typeof pkg.version === 'string' ? { manifest, version: pkg.version } : undefined;
}
