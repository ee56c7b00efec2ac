// Copies the Lua scripts under src/ into dist/ beside the compiled modules that load them: tsc copies only
// what it compiles. `npm run build` runs it after tsc; `node scripts/copy-lua.mjs FROM TO` copies elsewhere.
import { cpSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const [from = `${root}src`, to = `${root}dist`] = process.argv.slice(2);
cpSync(from, to, {
  recursive: true,
  filter: (path) => statSync(path).isDirectory() || path.endsWith('.lua'),
});
