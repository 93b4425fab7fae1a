import { defineConfig } from 'vitest/config';
import SummaryReporter from './test/summary-reporter';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    reporters: ['default', new SummaryReporter()],
    // Timers are an injected fake clock, not vitest's; this bounds real I/O only.
    testTimeout: 20_000,
  },
});
