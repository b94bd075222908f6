import { defineConfig } from 'vitest/config';

/**
 * Lane A of the end-to-end files: the app-level calls that share the 25xxx SIP and 35xxx RTP
 * ports (Genesys round trip, audio, reports page, memory scan, drain, workers), and the journal's
 * crash suite (it balances the lanes' run times).
 */
export const E2E_LANE_A = [
  'test/journal-crash.test.ts',
  'test/drain.test.ts',
  'test/e2e-audio.test.ts',
  'test/e2e-baresip.test.ts',
  'test/e2e-genesys.test.ts',
  'test/e2e-uui-abuse.test.ts',
  'test/media-priority-fallback.test.ts',
  'test/media-worker-pool.test.ts',
  'test/media-workers.test.ts',
  'test/memory-scan.test.ts',
  'test/reports-browser.test.ts',
  'test/genesys-write-back-app.test.ts',
  'test/e2e-genesys-writeback.test.ts',
];

/** Lane B: everything else that binds fixed ports or starts real peers. */
export const E2E_LANE_B = [
  'test/edge-b2bua.test.ts',
  'test/fail-closed-app.test.ts',
  'test/e2e-conference.test.ts',
  'test/edge-config.test.ts',
  'test/edge-assist-e2e.test.ts',
  'test/sip-uac.test.ts',
  'test/assist-api.test.ts',
  'test/assist-app.test.ts',
  'test/assist-panel-browser.test.ts',
  'test/baresip-call.test.ts',
  'test/call-port-conformance.test.ts',
  'test/drachtio-contract.test.ts',
  'test/drachtio-invite.test.ts',
  'test/e2e-baresip-tls.test.ts',
  'test/edge-rtpengine.test.ts',
  'test/edge-faults.test.ts',
  'test/edge-srtp.test.ts',
  'test/embedded-backend.test.ts',
  'test/fleet-shared-state.test.ts',
  'test/fleet.test.ts',
  'test/journal-reconcile.test.ts',
  'test/media-pacer.test.ts',
  'test/media-sdp.test.ts',
  'test/media-session.test.ts',
  'test/media-source-rules.test.ts',
  'test/reports-segments.test.ts',
  'test/rfc4475.test.ts',
  'test/sip-hostile.test.ts',
  'test/sipp-conformance.test.ts',
  'test/store-results.test.ts',
];

export const E2E_FILES = [...E2E_LANE_A, ...E2E_LANE_B];

/**
 * Three projects, which scripts/test-lanes.sh (`npm test`, the README test command) runs side by
 * side as three vitest processes (one process would queue every one-file-at-a-time project after
 * the others):
 * - e2e-a and e2e-b: files that bind fixed loopback ports or start real peers (SIPp, baresip,
 *   Redis, Kamailio, chromium, rtpengine); in each lane one file at a time. Each lane binds only
 *   inside its own port bands, all below the ephemeral range (test/support/port-guard.ts), so the
 *   two lanes never race for a port.
 * - unit: everything else, files in parallel; they bind port 0 only (the guard fails a fixed one).
 * `npm run test:quick` runs the unit project alone.
 */
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    globalSetup: ['test/setup/build.ts'],
    projects: [
      {
        extends: true,
        test: { name: 'e2e-a', include: E2E_LANE_A, setupFiles: ['test/setup/e2e-a.ts'], fileParallelism: false },
      },
      {
        extends: true,
        test: { name: 'e2e-b', include: E2E_LANE_B, setupFiles: ['test/setup/e2e-b.ts'], fileParallelism: false },
      },
      {
        extends: true,
        test: {
          name: 'unit',
          // Two workers on a 2-core machine, beside the two end-to-end lanes (mostly waiting on
          // real-time audio and peers).
          maxWorkers: 2,
          include: ['test/**/*.test.ts'],
          exclude: E2E_FILES,
          setupFiles: ['test/setup/unit.ts'],
        },
      },
    ],
  },
});
