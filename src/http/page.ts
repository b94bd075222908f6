import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyReply } from 'fastify';
import type { AdminApp } from './admin-app.js';
import { bearerMatchesToken } from './token.js';
import { Sessions, clearedSessionCookie, sessionCookie, sessionIdOf } from './session.js';

/**
 * The reports page: static files shipped in web/reports (no CDN, no framework), served at `/`,
 * and the sign-in that turns the API token into a cookie session:
 *   GET  /                 the page
 *   GET  /assets/<file>    its script and style sheet
 *   GET  /session          {signedIn}
 *   POST /session          {"token": "..."} -> 204 + session cookie, 401 when wrong
 *   POST /session/logout   ends the session
 */

/** web/reports, from src/http or dist/http alike. */
const WEB_DIR = fileURLToPath(new URL('../../web/reports/', import.meta.url));

const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'charts.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/** The page loads nothing from elsewhere and cannot be framed. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async function sendAsset(reply: FastifyReply, name: string): Promise<FastifyReply> {
  const type = ASSETS[name];
  if (type === undefined) return reply.code(404).send({ error: 'not found' });
  const body = await readFile(`${WEB_DIR}${name}`);
  return reply
    .header('content-type', type)
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-cache')
    .send(body);
}

interface PageOptions {
  token: string | undefined;
  sessions: Sessions;
  /** Mark the cookie Secure (the admin server is behind TLS). */
  secureCookie: boolean;
}

export function registerPage(app: AdminApp, o: PageOptions): void {
  app.get('/', async (_request, reply) => sendAsset(reply, 'index.html'));
  app.get('/assets/:file', async (request, reply) => sendAsset(reply, String((request.params as { file?: unknown }).file ?? '')));

  app.get('/session', async (request, reply) => {
    reply.header('cache-control', 'no-store');
    return { signedIn: o.sessions.valid(sessionIdOf(request.headers.cookie)), enabled: o.token !== undefined && o.token !== '' };
  });

  app.post('/session', async (request, reply) => {
    reply.header('cache-control', 'no-store');
    if (o.token === undefined || o.token === '') return reply.code(503).send({ error: 'reports disabled: set admin.apiToken in the configuration' });
    const body = request.body as { token?: unknown } | undefined;
    const presented = typeof body?.token === 'string' ? body.token : '';
    if (!bearerMatchesToken(presented, o.token)) return reply.code(401).send({ error: 'wrong token' });
    const id = o.sessions.create();
    return reply.code(204).header('set-cookie', sessionCookie(id, o.sessions.ttlSeconds, o.secureCookie)).send();
  });

  app.post('/session/logout', async (request, reply) => {
    o.sessions.end(sessionIdOf(request.headers.cookie));
    return reply.code(204).header('cache-control', 'no-store').header('set-cookie', clearedSessionCookie()).send();
  });
}
