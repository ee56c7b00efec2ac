import { defineConfig } from 'vitest/config';

/** `npm run stress`: the long loops of docs/BENCHMARKS.md ("Stress runs"), one file at a time. */
export default defineConfig({
  test: {
    include: ['test/stress/**/*.stress.ts'],
    testTimeout: 30 * 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 1,
    reporters: ['default'],
  },
});
