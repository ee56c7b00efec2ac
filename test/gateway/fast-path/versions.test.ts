import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  describeMismatch,
  FAST_PATH_TESTED_VERSIONS,
  fastPathVersionMismatches,
  loadedFastPathVersions,
  type FastPathPackage,
  type LoadedFastPathVersions,
} from '../../../src/gateway/fast-path/tested-versions.js';

/**
 * The socket fast path (src/gateway/fast-path/) reads private fields of socket.io,
 * engine.io and ws: a version it was not checked against must not slip in through an install.
 */

interface PackageJson {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  overrides?: Record<string, unknown>;
}

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as PackageJson;
const TESTED = FAST_PATH_TESTED_VERSIONS;
const NAMES = Object.keys(TESTED) as FastPathPackage[];
/** The packages `overrides` holds to one version across the tree (socket.io itself is only ours). */
const OVERRIDDEN: FastPathPackage[] = ['engine.io', 'ws', 'socket.io-parser', 'socket.io-adapter'];
const EXACT = /^\d+\.\d+\.\d+$/;

/** Throws, saying what changed and what to check, where `loaded` is not the tested list. */
function expectTestedVersions(loaded: LoadedFastPathVersions): void {
  const mismatches = fastPathVersionMismatches(loaded);
  if (mismatches.length > 0) {
    throw new Error(`The socket fast path runs on versions it was not tested against:\n${mismatches.map(describeMismatch).join('\n')}`);
  }
}

describe('the socket fast path runs on the versions it was tested against', () => {
  it('loads exactly the tested socket.io, engine.io, ws, socket.io-parser and socket.io-adapter', () => {
    expectTestedVersions(loadedFastPathVersions());
  });

  it('package.json pins exactly the tested versions, with no range', () => {
    const problems: string[] = [];
    for (const name of NAMES) {
      const pinned = pkg.dependencies?.[name];
      if (pinned !== TESTED[name]) {
        problems.push(`package.json dependencies has ${name} ${pinned ?? '(missing)'}, the fast path is tested against ${TESTED[name]}: pin exactly that version, no range`);
      }
    }
    // The rest of the socket.io family is pinned too, so that an install cannot move it either.
    for (const name of ['socket.io-client', '@socket.io/redis-adapter']) {
      const pinned = pkg.dependencies?.[name];
      if (pinned === undefined || !EXACT.test(pinned)) problems.push(`package.json dependencies has ${name} ${pinned ?? '(missing)'}: pin an exact version, no range`);
    }
    expect(problems, problems.join('\n')).toEqual([]);
  });

  it('overrides holds engine.io, ws, socket.io-parser and socket.io-adapter at the tested versions for the whole tree', () => {
    const problems: string[] = [];
    for (const name of OVERRIDDEN) {
      const override = pkg.overrides?.[name];
      if (override !== TESTED[name]) {
        problems.push(`package.json overrides has ${name} ${JSON.stringify(override) ?? '(missing)'}, the fast path is tested against ${TESTED[name]}: every package in the tree must load that version`);
      }
    }
    expect(problems, problems.join('\n')).toEqual([]);
  });
});

describe('comparing loaded versions with the tested list', () => {
  const same: LoadedFastPathVersions = { ...TESTED };

  it('finds nothing where every version is the tested one', () => {
    expect(fastPathVersionMismatches(same)).toEqual([]);
    expect(() => expectTestedVersions(same)).not.toThrow();
  });

  it('names each package whose version changed, with the tested and the loaded version', () => {
    const loaded = { ...same, ws: '8.24.0', 'engine.io': '6.7.0' };
    expect(fastPathVersionMismatches(loaded)).toEqual([
      { name: 'engine.io', tested: TESTED['engine.io'], loaded: '6.7.0' },
      { name: 'ws', tested: TESTED.ws, loaded: '8.24.0' },
    ]);
  });

  it('counts a package that is not found as a mismatch', () => {
    expect(fastPathVersionMismatches({ ...same, 'socket.io-parser': null })).toEqual([
      { name: 'socket.io-parser', tested: TESTED['socket.io-parser'], loaded: null },
    ]);
  });

  it('compares with the tested list it is given', () => {
    const tested = { ...TESTED, 'socket.io': '4.9.0' };
    expect(fastPathVersionMismatches(same, tested)).toEqual([{ name: 'socket.io', tested: '4.9.0', loaded: TESTED['socket.io'] }]);
  });

  it('fails loudly on a changed version: which package, from which version to which, and what to check', () => {
    const loaded = { ...same, ws: '8.24.0' };
    expect(() => expectTestedVersions(loaded)).toThrow(
      `ws changed from ${TESTED.ws} (tested) to 8.24.0 (loaded): check src/gateway/fast-path/packet-writer.ts and ` +
        'src/gateway/fast-path/ack-reader.ts against the new ws internals before updating the tested list',
    );
    expect(() => expectTestedVersions({ ...same, 'engine.io': null })).toThrow(/engine\.io: .* no engine\.io is found/);
  });
});

describe('finding the loaded versions', () => {
  const root = mkdtempSync(join(tmpdir(), 'fast-path-versions-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  function fakePackage(dir: string, manifest: Record<string, unknown>, entry: string): void {
    mkdirSync(dirname(join(dir, entry)), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest));
    writeFileSync(join(dir, entry), 'module.exports = {};\n');
  }

  it('resolves each package from the one that loads it, also where `exports` hides its package.json', () => {
    const modules = join(root, 'node_modules');
    // socket.io with its own engine.io, which hides its package.json and has one in its build folder.
    fakePackage(join(modules, 'socket.io'), { name: 'socket.io', version: '4.0.1', main: 'index.js' }, 'index.js');
    const nestedEngine = join(modules, 'socket.io', 'node_modules', 'engine.io');
    fakePackage(nestedEngine, { name: 'engine.io', version: '6.0.2', exports: { require: './build/cjs/index.js' } }, 'build/cjs/index.js');
    writeFileSync(join(nestedEngine, 'build', 'cjs', 'package.json'), JSON.stringify({ type: 'commonjs' }));
    // A hoisted engine.io that socket.io does not load, and the ws the nested engine.io finds by walking up.
    fakePackage(join(modules, 'engine.io'), { name: 'engine.io', version: '9.9.9', main: 'index.js' }, 'index.js');
    fakePackage(join(modules, 'ws'), { name: 'ws', version: '8.0.3', exports: { '.': './index.js', './package.json': './package.json' } }, 'index.js');
    fakePackage(join(modules, 'socket.io-adapter'), { name: 'socket.io-adapter', version: '2.0.4', main: 'dist/index.js' }, 'dist/index.js');
    // No socket.io-parser at all.

    expect(loadedFastPathVersions(join(root, 'src', 'main.js'))).toEqual({
      'socket.io': '4.0.1',
      'engine.io': '6.0.2',
      ws: '8.0.3',
      'socket.io-parser': null,
      'socket.io-adapter': '2.0.4',
    });
  });

  it('finds nothing below a module that has no socket.io', () => {
    const lonely = mkdtempSync(join(tmpdir(), 'fast-path-versions-none-'));
    try {
      expect(loadedFastPathVersions(join(lonely, 'main.js'))).toEqual(Object.fromEntries(NAMES.map((name) => [name, null])));
    } finally {
      rmSync(lonely, { recursive: true, force: true });
    }
  });
});
