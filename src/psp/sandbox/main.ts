/**
 * Standalone PSP sandbox, for out-of-process use (SIPp runs, manual tests):
 *   npx tsx src/psp/sandbox/main.ts [--host 127.0.0.1] [--port 18080] [--latency-ms 0]
 * Point a profile at it with `psp: { type: sandbox, url: http://127.0.0.1:18080, face: stripe }`
 * and inject faults with `curl -XPOST host:port/_sandbox/faults -d '{"fault":{"kind":"reply-lost"}}'`.
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../../log.js';
import { startSandbox } from './server.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '18080' },
    'latency-ms': { type: 'string', default: '0' },
    'log-level': { type: 'string', default: 'info' },
  },
});

const logger = createLogger({ level: values['log-level'], name: 'psp-sandbox' });
const sandbox = await startSandbox({ host: values.host, port: Number(values.port), latencyMs: Number(values['latency-ms']), logger });
const stop = (): void => {
  void sandbox.close().then(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
