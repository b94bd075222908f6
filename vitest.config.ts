import { defineConfig } from 'vitest/config';

/**
 * Two projects that run side by side:
 * - e2e: files that bind fixed loopback ports, start real peers (SIPp, baresip, Redis, Kamailio,
 *   chromium, rtpengine) or time real RTP; one file at a time, so no two race for a port or a CPU-bound
 *   RTP timeline. Their fixed ports are all below the ephemeral range (test/support/port-guard.ts).
 * - unit: everything else, files in parallel; they bind port 0 only (the guard fails a fixed one).
 * `npm run test:quick` runs the unit project alone.
 */
export const E2E_FILES = [
  'test/assist-api.test.ts',
  'test/assist-app.test.ts',
  'test/assist-panel-browser.test.ts',
  'test/baresip-call.test.ts',
  'test/drachtio-contract.test.ts',
  'test/drain.test.ts',
  'test/e2e-audio.test.ts',
  'test/e2e-baresip-tls.test.ts',
  'test/e2e-baresip.test.ts',
  'test/e2e-genesys.test.ts',
  'test/e2e-uui-abuse.test.ts',
  'test/edge-rtpengine.test.ts',
  'test/embedded-backend.test.ts',
  'test/fleet-shared-state.test.ts',
  'test/fleet.test.ts',
  'test/journal-crash.test.ts',
  'test/journal-reconcile.test.ts',
  'test/media-pacer.test.ts',
  'test/media-priority-fallback.test.ts',
  'test/media-sdp.test.ts',
  'test/media-session.test.ts',
  'test/media-source-rules.test.ts',
  'test/media-worker-pool.test.ts',
  'test/media-workers.test.ts',
  'test/memory-scan.test.ts',
  'test/reports-browser.test.ts',
  'test/reports-segments.test.ts',
  'test/rfc4475.test.ts',
  'test/sip-hostile.test.ts',
  'test/sipp-conformance.test.ts',
  'test/store-results.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One serial e2e worker plus unit workers on a 2-core machine: most e2e time is waiting.
    maxWorkers: 3,
    globalSetup: ['test/setup/build.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'e2e',
          include: E2E_FILES,
          setupFiles: ['test/setup/e2e.ts'],
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: E2E_FILES,
          setupFiles: ['test/setup/unit.ts'],
        },
      },
    ],
  },
});
