import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type Metafile } from 'esbuild';

/**
 * Builds the browser bundle of the SDK: `PushCenterClient` with socket.io-client in one minified ES
 * module and its source map, for `<script type="module">import { PushCenterClient } from
 * '/push-center-client.js'</script>`.
 *
 * A build step, not part of the SDK: run `tsx src/client/bundle.ts [outfile]` (default
 * `public/push-center-client.js` of the package).
 */

const here = fileURLToPath(new URL('.', import.meta.url));
/** The SDK entry next to this file: `index.ts` when run from the sources, `index.js` from `dist/`. */
const entry = resolve(here, import.meta.url.endsWith('.ts') ? 'index.ts' : 'index.js');
export const DEFAULT_BUNDLE_FILE = resolve(here, '../../public/push-center-client.js');

export interface BundleResult {
  outfile: string;
  /** esbuild's account of the inputs and outputs, e.g. to check what went in. */
  metafile: Metafile;
}

export async function buildClientBundle(outfile: string = DEFAULT_BUNDLE_FILE): Promise<BundleResult> {
  const result = await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: 'esm',
    // The browser fields of engine.io-client swap its Node transports (ws, xmlhttprequest-ssl) out.
    platform: 'browser',
    target: ['es2020'],
    minify: true,
    sourcemap: true,
    metafile: true,
    logLevel: 'warning',
  });
  return { outfile, metafile: result.metafile };
}

const runDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (runDirectly) {
  const { outfile, metafile } = await buildClientBundle(process.argv[2] ? resolve(process.argv[2]) : undefined);
  const bytes = Object.entries(metafile.outputs).find(([file]) => file.endsWith('.js'))?.[1].bytes ?? 0;
  console.log(`push-center client bundle: ${outfile} (${(bytes / 1024).toFixed(1)} KiB)`);
}
