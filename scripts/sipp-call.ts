/**
 * Places one Genesys-like payment call with SIPp against a running pay-ivr and prints the result
 * UUI of the hand-back REFER. `npm run sipp:approved` = the approved Visa payment on 127.0.0.1:5060.
 *
 *   tsx scripts/sipp-call.ts [--target host:port] [--uui "acct=...|amt=49.90|..."]
 *   tsx scripts/sipp-call.ts --write-pcaps   (regenerates the pcaps shipped in sipp-scenarios/genesys/pcap)
 */
import { parseArgs } from 'node:util';
import { writeDtmfPcap, type DtmfStep } from '../test/support/dtmf-pcap.js';
import { paymentSteps } from '../test/support/payment-steps.js';
import { runWithTools } from '../test/support/tools.js';
import { runGenesysCall } from '../test/support/genesys-sipp.js';

/** The approved Visa payment: confirm the amount (barge-in, as soon as media flows), card, expiry, security code. */
export const APPROVED_VISA: DtmfStep[] = paymentSteps('4242424242424242', { expiry: '1234', cvc: '737' });

const { values } = parseArgs({
  options: {
    target: { type: 'string', default: process.env.PAYIVR_E2E_TARGET ?? '127.0.0.1:5060' },
    uui: { type: 'string', default: 'acct=C-1001|amt=49.90|cur=EUR|ref=INV-77' },
    cnv: { type: 'string', default: `demo-${process.pid}` },
    'write-pcaps': { type: 'boolean', default: false },
  },
});

await runWithTools(async () => {
  if (values['write-pcaps']) {
    const r = writeDtmfPcap('sipp-scenarios/genesys/pcap/approved-visa.pcap', APPROVED_VISA);
    process.stdout.write(`approved-visa.pcap: ${r.packets} packets, ${r.durationMs} ms\n`);
    return;
  }
  const r = await runGenesysCall({ scenario: 'payment', target: values.target, uui: values.uui, conversationId: values.cnv, steps: APPROVED_VISA, localPort: 5070, mediaPort: 6000, timeoutS: 120 });
  if (r.exitCode !== 0 || !r.resultUui) {
    process.stderr.write(`SIPp call failed (exit ${r.exitCode}); traces in ${r.dir}\n${r.output}\n`);
    process.exit(1);
  }
  process.stdout.write(`REFER Refer-To: ${r.referTo}\nresult UUI: ${r.resultUui}\n`);
});
