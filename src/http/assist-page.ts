import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyReply } from 'fastify';
import type { AdminApp } from './admin-app.js';

/**
 * The Agent Assist panel: static files shipped in web/assist (no CDN, no framework), for a
 * Genesys Script's Web Page component:
 *   GET /assist/panel            the page; its capture token comes in the URL fragment
 *                                (#token=...), which browsers never send to a server
 *   GET /assist/assets/<file>    its script and style sheet
 * The page talks to /v1/assist/captures/:id with the token in an Authorization header only.
 */

/** web/assist, from src/http or dist/http alike. */
const WEB_DIR = fileURLToPath(new URL('../../web/assist/', import.meta.url));

const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'panel.js': 'text/javascript; charset=utf-8',
  'panel.css': 'text/css; charset=utf-8',
};

/** Loads nothing from elsewhere; only the configured Genesys origins may frame it. */
export function panelCsp(frameAncestors: readonly string[]): string {
  return `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors ${frameAncestors.join(' ')}; base-uri 'none'`;
}

async function sendAsset(reply: FastifyReply, name: string, csp: string): Promise<FastifyReply> {
  const type = ASSETS[name];
  if (type === undefined) return reply.code(404).send({ error: 'not found' });
  const body = await readFile(`${WEB_DIR}${name}`);
  return reply
    .header('content-type', type)
    .header('content-security-policy', csp)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-cache')
    .send(body);
}

export function registerAssistPage(app: AdminApp, frameAncestors: readonly string[]): void {
  const csp = panelCsp(frameAncestors);
  app.get('/assist/panel', async (_request, reply) => sendAsset(reply, 'index.html', csp));
  app.get('/assist/assets/:file', async (request, reply) => sendAsset(reply, String((request.params as { file?: unknown }).file ?? ''), csp));
}
