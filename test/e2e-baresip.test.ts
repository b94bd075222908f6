import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startApp, type App } from '../src/app.js';
import { Baresip } from './support/baresip.js';

/**
 * A real softphone through the whole product: baresip dials pay-ivr (the app as `npm start` runs
 * it: embedded engine, real dialogue, sandbox PSP), keys an amount and a card as RFC 2833, and the
 * payment is charged and recorded.
 */

const SIP_PORT = 25080;
let app: App;
let phone: Baresip;
let logFile: string;

beforeAll(async () => {
  logFile = join(mkdtempSync(join(tmpdir(), 'payivr-baresip-')), 'pay-ivr.log');
  const config = parseConfig({
    journal: { dataDir: join(dirname(logFile), 'data') },
    sip: { listen: [{ transport: 'udp', host: '127.0.0.1', port: SIP_PORT }] },
    rtp: { host: '127.0.0.1', portMin: 35300, portMax: 35399 },
    admin: { enabled: false },
    // No UUI from a softphone: the caller enters the amount. The hand-back target is a port where
    // nothing answers, so the transfer fails and pay-ivr ends the call itself.
    profiles: { default: { language: 'en-US', currency: 'EUR', amountSource: 'entered', psp: { type: 'sandbox' }, handBack: { automated: 'sip:+18005550100@127.0.0.1:9' }, timeouts: { firstDigitMs: 8000, interDigitMs: 3000, referMs: 5000 } } },
  });
  app = await startApp(config, createLogger({ level: 'debug', destination: logFile }));
  phone = await Baresip.start({ sipPort: 25582, ctrlPort: 25585, rtpMin: 25590, rtpMax: 25629 });
});

afterAll(async () => {
  await phone?.stop();
  await app?.stop();
});

async function press(keys: string, gapMs = 350): Promise<void> {
  for (const k of keys) {
    const r = await phone.command('sndcode', k);
    expect(r.ok).toBe(true);
    await new Promise((res) => setTimeout(res, gapMs));
  }
}
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('baresip pays through the whole product', () => {
  it('amount 25.50 EUR entered, Visa keyed, charged and recorded', async () => {
    const from = phone.events.length;
    expect((await phone.command('dial', `sip:+18005550123@127.0.0.1:${SIP_PORT}`)).ok).toBe(true);
    await phone.waitEvent('CALL_ESTABLISHED', 10_000, from);
    await phone.waitEvent('CALL_RTPESTAB', 5000, from).catch(() => undefined);
    await pause(1500);
    await press('25*5#'); // barges in over "enter the amount"
    await pause(1000);
    await press('1'); // amount read back: correct
    await pause(800);
    await press('4242424242424242#');
    await pause(800);
    await press('1');
    await pause(800);
    await press('1234');
    await pause(800);
    await press('1');
    await pause(800);
    await press('737');
    await app.idle();
    await new Promise((r) => setTimeout(r, 200));
    const [result] = await app.store.recent(1);
    expect(result).toMatchObject({ outcome: 'approved', amount: 2550, currency: 'EUR', brand: 'visa', last4: '4242' });
    expect(result?.handBack?.status).not.toBe('skipped');
  }, 120_000);

  it('the log holds no card digits', () => {
    const log = readFileSync(logFile, 'utf8');
    expect(log).toContain('call answered');
    for (const s of ['4242424242424242', '424242424242', '"1234"', '"737"']) expect(log.includes(s), s.slice(0, 4)).toBe(false);
  });
});
