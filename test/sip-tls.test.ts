import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/load.js';
import { silentLogger } from '../src/log.js';
import { SipTransport, type TlsMaterial } from '../src/telephony/embedded/sip/transport.js';
import { selfSignedCert } from './support/certs.js';

/**
 * SIP over TLS versions: TLS 1.2 by default (what Genesys BYOC speaks), TLS 1.3 only when
 * sip.tls.maxVersion says so; a bad combination fails at start with the field's path.
 */

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'payivr-tlsver-'));
  selfSignedCert(dir, { ipSan: true });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function withListener(material: Partial<TlsMaterial>, run: (port: number) => Promise<void>): Promise<void> {
  const t = new SipTransport({
    listen: [{ transport: 'tls', host: '127.0.0.1', port: 0 }],
    limits: { maxMessageBytes: 16384, maxHeaders: 100, maxLineLength: 8192 },
    logger: silentLogger,
    tls: { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')), minVersion: 'TLSv1.2', ...material },
  });
  await t.start();
  try {
    await run(t.localEndpoint('tls')?.port as number);
  } finally {
    await t.stop();
  }
}

/** The protocol a client that allows `min`..`max` ends up with, or the handshake error. */
function handshake(port: number, min: tls.SecureVersion, max: tls.SecureVersion): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(join(dir, 'cert.pem')), minVersion: min, maxVersion: max });
    s.once('secureConnect', () => {
      resolve(s.getProtocol() ?? 'none');
      s.destroy();
    });
    s.once('error', (e) => resolve(`error: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
  });
}

describe('SIP over TLS: versions', () => {
  it('default: TLS 1.2 is negotiated even with a client that can do 1.3; a 1.3-only client is refused', async () => {
    await withListener({}, async (port) => {
      expect(await handshake(port, 'TLSv1.2', 'TLSv1.3')).toBe('TLSv1.2');
      expect(await handshake(port, 'TLSv1.3', 'TLSv1.3')).toMatch(/^error: /);
      expect(await handshake(port, 'TLSv1', 'TLSv1.1')).toMatch(/^error: /);
    });
  });

  it('maxVersion TLSv1.3 lets a client use 1.3 and still serves 1.2 clients', async () => {
    await withListener({ maxVersion: 'TLSv1.3' }, async (port) => {
      expect(await handshake(port, 'TLSv1.2', 'TLSv1.3')).toBe('TLSv1.3');
      expect(await handshake(port, 'TLSv1.2', 'TLSv1.2')).toBe('TLSv1.2');
    });
  });

  it('config: defaults 1.2..1.2; minVersion 1.3 with maxVersion 1.2 fails with the field path', () => {
    const c = parseConfig({ sip: { tls: { certFile: 'c', keyFile: 'k' } } });
    expect(c.sip.tls).toMatchObject({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    expect(() => parseConfig({ sip: { tls: { certFile: 'c', keyFile: 'k', minVersion: 'TLSv1.3' } } })).toThrow(/sip\.tls\.maxVersion/);
    expect(parseConfig({ rtp: {} }).rtp.srtpSuites).toEqual(['AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32']);
    expect(() => parseConfig({ rtp: { srtpSuites: ['AEAD_AES_256_GCM'] } })).toThrow(/rtp\.srtpSuites/);
  });

  it('as a client (a new connection to a peer), pay-ivr verifies the peer certificate: unknown CA refused, known CA served', async () => {
    const cert = readFileSync(join(dir, 'cert.pem'));
    // Each attempt ends on an event: data served, or the connection closed without any (the
    // client gave up on the handshake).
    let settle: ((r: 'served' | 'refused') => void) | undefined;
    const server = tls.createServer({ cert, key: readFileSync(join(dir, 'key.pem')) }, (s) => s.on('data', () => settle?.('served')));
    server.on('connection', (raw: import('node:net').Socket) => raw.on('close', () => settle?.('refused')));
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const attempt = async (ca: Buffer | undefined): Promise<string> => {
      const t = new SipTransport({
        listen: [{ transport: 'tls', host: '127.0.0.1', port: 0 }],
        limits: { maxMessageBytes: 16384, maxHeaders: 100, maxLineLength: 8192 },
        logger: silentLogger,
        tls: { cert, key: readFileSync(join(dir, 'key.pem')), minVersion: 'TLSv1.2', ca },
      });
      await t.start();
      try {
        const outcome = new Promise<string>((r) => (settle = r));
        t.send(Buffer.from('OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n\r\n'), { transport: 'tls', address: '127.0.0.1', port });
        return await outcome;
      } finally {
        await t.stop();
      }
    };
    try {
      expect(await attempt(undefined)).toBe('refused'); // self-signed, not in the system CAs
      expect(await attempt(cert)).toBe('served'); // sip.tls.caFile
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
