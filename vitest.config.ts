import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // End-to-end suites bind fixed loopback ports and start real peers: keep files serial
    // so two suites never race for a port or a CPU-bound RTP timeline.
    fileParallelism: false,
    pool: 'forks',
  },
});
