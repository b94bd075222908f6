import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { requireTool } from './tools.js';

/**
 * A throw-away self-signed certificate for 127.0.0.1 (one day, RSA 2048), written as
 * `<dir>/key.pem` and `<dir>/cert.pem`. With `ipSan`, the address is also a subjectAltName, as a
 * verifying client (baresip, Node's TLS) requires.
 */
export function selfSignedCert(dir: string, o: { ipSan?: boolean } = {}): { keyFile: string; certFile: string } {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  const san = o.ipSan === true ? ['-addext', 'subjectAltName=IP:127.0.0.1'] : [];
  execFileSync(requireTool('openssl'), ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=127.0.0.1', ...san], { stdio: 'ignore' });
  return { keyFile, certFile };
}
