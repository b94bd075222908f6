/**
 * Child process of test/psp-tls-memory.test.ts: charges through the Stripe and Adyen adapters over
 * HTTPS with random card numbers that exist only as SensitiveDigits here (generated digit by
 * digit, never as a string), tells the parent each number through a Buffer it zeroes, then waits
 * to have its memory read.
 */
import { randomInt } from 'node:crypto';
import { writeSync } from 'node:fs';
import { SensitiveDigits } from '../../src/domain/sensitive.js';
import { silentLogger } from '../../src/log.js';
import { AdyenGateway } from '../../src/psp/adyen.js';
import { StripeGateway } from '../../src/psp/stripe.js';
import { newIdempotencyKey } from '../../src/psp/idempotency.js';

const base = process.env.PSP_URL ?? '';
const count = Number(process.env.CHARGES ?? '4');

function randomPan(): SensitiveDigits {
  const d = new SensitiveDigits(16);
  d.push('4');
  const digits = '0123456789';
  for (let i = 1; i < 16; i++) d.push(digits[randomInt(10)] as string);
  return d;
}

function tellParent(pan: SensitiveDigits): void {
  const line = Buffer.from(new ArrayBuffer(pan.length + 1)); // off the V8 heap (see SensitiveDigits)
  for (let i = 0; i < pan.length; i++) line[i] = 0x30 + pan.digitAt(i);
  line[pan.length] = 0x0a;
  writeSync(1, line);
  line.fill(0);
}

const stripe = new StripeGateway({ apiKey: 'sk_test_tls', baseUrl: base, timeoutMs: 5_000, logger: silentLogger });
const adyen = new AdyenGateway({ apiKey: 'tls', merchantAccount: 'PayIvrSandbox', baseUrl: `${base}/v71`, timeoutMs: 5_000, logger: silentLogger });
for (let i = 0; i < count; i++) {
  const pan = randomPan();
  tellParent(pan);
  const card = { pan, expiry: SensitiveDigits.from('1230'), securityCode: SensitiveDigits.from('737') };
  const gw = i % 2 === 0 ? stripe : adyen;
  const out = await gw.charge({ amount: 1000 + i, currency: 'USD', card, reference: `TLS-${i}`, idempotencyKey: newIdempotencyKey(), metadata: {} });
  card.pan.wipe();
  card.expiry.wipe();
  card.securityCode.wipe();
  writeSync(1, `charged ${out.status}\n`);
}
writeSync(1, 'done\n');
setInterval(() => undefined, 60_000);
