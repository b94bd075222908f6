/**
 * Child process of test/drachtio-invite.test.ts: a pay-ivr node on the drachtio backend that
 * answers every call and tells its parent each answered call's dialog state (what the call
 * controller keeps beside the journal), one JSON line per call, then waits to be killed with
 * SIGKILL (no teardown: the kernel closes its sockets).
 */
import { writeSync } from 'node:fs';
import { createLogger } from '../../src/log.js';
import { parseConfig } from '../../src/config/load.js';
import { DrachtioBackend } from '../../src/telephony/drachtio/backend.js';

const raw: unknown = JSON.parse(process.env.PAYIVR_CHILD_CONFIG ?? '{}');
// Log lines to stderr: the parent keeps them in a file of the run.
const backend = new DrachtioBackend(parseConfig(raw), createLogger({ level: 'debug', destination: process.stderr }));
backend.on('call', (call) => {
  call.answer().then(
    () => writeSync(1, `DIALOG ${JSON.stringify(call.dialogState?.() ?? null)}\n`),
    (e: unknown) => writeSync(1, `ANSWER-FAILED ${String(e)}\n`),
  );
});
await backend.start();
writeSync(1, 'STARTED\n');
setInterval(() => undefined, 60_000);
