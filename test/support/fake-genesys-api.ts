import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { selfSignedCert } from './certs.js';
import type { RunText } from './run-texts.js';

/**
 * A local HTTPS stand-in for the Genesys Cloud login and Platform API, limited to the three
 * calls the participant-data writer makes (POST /oauth/token, GET /api/v2/conversations/{id},
 * PATCH /api/v2/conversations/calls/{id}/participants/{id}/attributes; GET
 * /api/v2/conversations/calls/{id} is served too). Every request is checked against the shapes
 * of the SDK's typings and the API reference; a deviation is answered 400 and recorded in
 * `violations`, which a test asserts is empty. Login and API share one host and port: the
 * writer reaches both through `genesys.platform.gateway`, as a child process would.
 */

export type Purpose = 'customer' | 'external' | 'agent' | 'acd' | 'ivr' | 'user';

export interface FakeParticipant {
  id?: string;
  purpose: Purpose;
  /** Ended participants carry an end time, as Genesys reports them. */
  ended?: boolean;
  attributes?: Record<string, string>;
}

export interface AcceptedWrite {
  conversationId: string;
  participantId: string;
  attributes: Record<string, string>;
  at: string;
}

export type Fault =
  /** The next `count` requests answer 429 with this Retry-After (seconds or an HTTP date). */
  | { kind: 'rate-limit'; count: number; retryAfter: string; target?: FaultTarget }
  /** The next `count` requests answer this 5xx. */
  | { kind: 'server-error'; count: number; status?: number; target?: FaultTarget }
  /** The next `count` requests get no answer at all (the client's timeout must end them). */
  | { kind: 'hang'; count: number; target?: FaultTarget }
  /** Every token issued so far stops working: API calls answer 401 until a new login. */
  | { kind: 'expire-tokens' }
  /** The next `count` requests answer this status with an error body (403, 404, 400...). */
  | { kind: 'status'; count: number; status: number; target?: FaultTarget };

/** Which requests a counted fault hits: the API calls (default), the login, or both. */
type FaultTarget = 'api' | 'login' | 'all';

export interface FakeGenesysStart {
  host: string;
  loginHost: string;
  apiHost: string;
  port: number;
  caPem: string;
  /** The CA (the self-signed certificate) as a file, for `genesys.platform.caFile`. */
  caFile: string;
}

interface SeenRequest {
  method: string;
  path: string;
  body: string;
}

type Counted = Exclude<Fault, { kind: 'expire-tokens' }>;

const JSON_TYPE = /^application\/json(\s*;\s*charset=utf-8)?$/i;
const FORM_TYPE = /^application\/x-www-form-urlencoded(\s*;\s*charset=utf-8)?$/i;
const ATTRIBUTES_PATH = /^\/api\/v2\/conversations\/calls\/([^/]+)\/participants\/([^/]+)\/attributes$/;
const CONVERSATION_PATH = /^\/api\/v2\/conversations\/(?:(calls)\/)?([^/]+)$/;

export class FakeGenesysApi {
  readonly clientId: string;
  readonly clientSecret: string;
  /** Lifetime (seconds) of the tokens issued. */
  tokenLifetimeSec: number;
  readonly writes: AcceptedWrite[] = [];
  readonly violations: string[] = [];
  /** Every request as received (method, path, body): the card-digit scan reads these. */
  readonly requests: SeenRequest[] = [];
  /** Tokens issued (one per accepted login). */
  logins = 0;

  private server: Server | undefined;
  private dir: string | undefined;
  private readonly conversations = new Map<string, { id: string; participants: Required<FakeParticipant>[] }>();
  private readonly tokens = new Map<string, number>();
  private readonly faults: Counted[] = [];
  private readonly hanging = new Set<ServerResponse>();
  private readonly sockets = new Set<Socket>();
  private down = false;

  constructor(o: { clientId?: string; clientSecret?: string; tokenLifetimeSec?: number } = {}) {
    this.clientId = o.clientId ?? 'fake-client-id';
    this.clientSecret = o.clientSecret ?? `fake-secret-${randomBytes(8).toString('hex')}`;
    this.tokenLifetimeSec = o.tokenLifetimeSec ?? 86_400;
  }

  async start(): Promise<FakeGenesysStart> {
    this.dir = mkdtempSync(join(tmpdir(), 'fake-genesys-'));
    const { keyFile, certFile } = selfSignedCert(this.dir, { ipSan: true });
    const caPem = readFileSync(certFile, 'utf8');
    const server = createServer({ key: readFileSync(keyFile), cert: caPem }, (req, res) => this.handle(req, res));
    server.on('connection', (s: Socket) => {
      if (this.down) {
        s.destroy();
        return;
      }
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('fake Genesys API: no port');
    return { host: '127.0.0.1', loginHost: '127.0.0.1', apiHost: '127.0.0.1', port: addr.port, caPem, caFile: certFile };
  }

  async stop(): Promise<void> {
    for (const r of this.hanging) r.destroy();
    this.hanging.clear();
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Adds a conversation; participants without an id get a UUID. Returns the participants with their ids. */
  addConversation(id: string, participants: FakeParticipant[]): Required<FakeParticipant>[] {
    const ps = participants.map((p) => ({ id: p.id ?? randomUUID(), purpose: p.purpose, ended: p.ended ?? false, attributes: { ...(p.attributes ?? {}) } }));
    this.conversations.set(id, { id, participants: ps });
    return ps;
  }

  /** The attributes of the conversation's participants, by participant id. */
  attributesOf(conversationId: string): Record<string, Record<string, string>> {
    const c = this.conversations.get(conversationId);
    if (c === undefined) throw new Error(`fake Genesys API: no conversation ${conversationId}`);
    return Object.fromEntries(c.participants.map((p) => [p.id, { ...p.attributes }]));
  }

  setFault(f: Fault): void {
    if (f.kind === 'expire-tokens') this.tokens.clear();
    else this.faults.push({ ...f });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Full outage: new connections are reset and open ones closed, until turned off. */
  outage(on: boolean): void {
    this.down = on;
    if (on) for (const s of this.sockets) s.destroy();
  }

  /** The request texts (path and body) for a card-digit scan. */
  texts(): RunText[] {
    return this.requests.map((r, i) => ({ where: `fake-genesys request ${i} ${r.method} ${r.path}`, text: `${r.path}\n${r.body}` }));
  }

  private violation(res: ServerResponse, what: string): void {
    this.violations.push(what);
    send(res, 400, { status: 400, code: 'bad.request', message: `fake Genesys API: ${what}` });
  }

  private takeFault(target: 'api' | 'login'): Counted | undefined {
    const f = this.faults.find((x) => (x.target ?? 'api') === target || x.target === 'all');
    if (f === undefined) return undefined;
    f.count -= 1;
    if (f.count <= 0) this.faults.splice(this.faults.indexOf(f), 1);
    return f;
  }

  /** Answers the fault; false when there is none for this request. */
  private applyFault(target: 'api' | 'login', res: ServerResponse): boolean {
    const f = this.takeFault(target);
    if (f === undefined) return false;
    switch (f.kind) {
      case 'rate-limit':
        res.setHeader('Retry-After', f.retryAfter);
        send(res, 429, { status: 429, code: 'too.many.requests', message: 'Rate limit exceeded the maximum' });
        return true;
      case 'server-error':
        send(res, f.status ?? 503, { status: f.status ?? 503, code: 'service.unavailable', message: 'Service unavailable' });
        return true;
      case 'status':
        send(res, f.status, { status: f.status, code: f.status === 404 ? 'not.found' : 'error', message: `status ${f.status}` });
        return true;
      case 'hang':
        this.hanging.add(res);
        res.on('close', () => this.hanging.delete(res));
        return true;
    }
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const path = (req.url ?? '').split('?')[0] ?? '';
      this.requests.push({ method: req.method ?? '', path, body });
      try {
        this.route(req, res, path, body);
      } catch (e) {
        this.violation(res, `fake error: ${String(e)}`);
      }
    });
  }

  private route(req: IncomingMessage, res: ServerResponse, path: string, body: string): void {
    const method = req.method ?? '';
    if (path === '/oauth/token') {
      if (method !== 'POST') return this.violation(res, `${method} /oauth/token (only POST)`);
      return this.login(req, res, body);
    }
    const attrs = ATTRIBUTES_PATH.exec(path);
    const conv = CONVERSATION_PATH.exec(path);
    if (attrs === null && conv === null) return this.violation(res, `unknown endpoint ${method} ${path}`);
    if (attrs !== null && method !== 'PATCH') return this.violation(res, `${method} ${path} (only PATCH)`);
    if (conv !== null && method !== 'GET') return this.violation(res, `${method} ${path} (only GET)`);
    const auth = req.headers.authorization ?? '';
    const bearer = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(auth);
    if (bearer === null) return this.violation(res, `${method} ${path}: Authorization is not "Bearer <token>"`);
    if (this.applyFault('api', res)) return;
    const exp = this.tokens.get(bearer[1] ?? '');
    if (exp === undefined || exp <= Date.now()) {
      send(res, 401, { status: 401, code: 'bad.credentials', message: 'Invalid login credentials.' });
      return;
    }
    if (conv !== null) return this.getConversation(res, decodeURIComponent(conv[2] ?? ''), body);
    return this.patchAttributes(req, res, decodeURIComponent(attrs?.[1] ?? ''), decodeURIComponent(attrs?.[2] ?? ''), body);
  }

  private login(req: IncomingMessage, res: ServerResponse, body: string): void {
    const type = req.headers['content-type'] ?? '';
    if (!FORM_TYPE.test(type)) return this.violation(res, `POST /oauth/token: Content-Type "${type}" (must be application/x-www-form-urlencoded)`);
    const basic = /^Basic ([A-Za-z0-9+/]+=*)$/.exec(req.headers.authorization ?? '');
    if (basic === null) return this.violation(res, 'POST /oauth/token: Authorization is not "Basic <base64>"');
    const form = new URLSearchParams(body);
    if ([...form.keys()].join(',') !== 'grant_type' || form.get('grant_type') !== 'client_credentials') {
      return this.violation(res, 'POST /oauth/token: body must be exactly grant_type=client_credentials');
    }
    if (this.applyFault('login', res)) return;
    if (Buffer.from(basic[1] ?? '', 'base64').toString('utf8') !== `${this.clientId}:${this.clientSecret}`) {
      send(res, 401, { error: 'invalid_client', description: 'client not found or secret mismatch' });
      return;
    }
    const token = randomBytes(24).toString('base64url');
    this.tokens.set(token, Date.now() + this.tokenLifetimeSec * 1000);
    this.logins += 1;
    send(res, 200, { access_token: token, token_type: 'bearer', expires_in: this.tokenLifetimeSec });
  }

  private getConversation(res: ServerResponse, id: string, body: string): void {
    if (body !== '') return this.violation(res, `GET conversation ${id} with a body`);
    const c = this.conversations.get(id);
    if (c === undefined) {
      send(res, 404, { status: 404, code: 'not.found', message: 'The requested conversation was not found.' });
      return;
    }
    send(res, 200, {
      id: c.id,
      participants: c.participants.map((p) => ({
        id: p.id,
        purpose: p.purpose,
        state: p.ended ? 'disconnected' : 'connected',
        ...(p.ended ? { endTime: new Date().toISOString() } : {}),
        attributes: p.attributes,
      })),
      selfUri: `/api/v2/conversations/${c.id}`,
    });
  }

  private patchAttributes(req: IncomingMessage, res: ServerResponse, conversationId: string, participantId: string, body: string): void {
    const type = req.headers['content-type'] ?? '';
    if (!JSON_TYPE.test(type)) return this.violation(res, `PATCH attributes: Content-Type "${type}" (must be application/json)`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return this.violation(res, 'PATCH attributes: body is not JSON');
    }
    const shape = attributesBodyProblem(parsed);
    if (shape !== undefined) return this.violation(res, `PATCH attributes: ${shape}`);
    const attributes = (parsed as { attributes: Record<string, string> }).attributes;
    const c = this.conversations.get(conversationId);
    const p = c?.participants.find((x) => x.id === participantId);
    if (p === undefined) {
      send(res, 404, { status: 404, code: 'not.found', message: 'The requested participant was not found.' });
      return;
    }
    // Genesys merges: the names sent replace their values, the others stay.
    Object.assign(p.attributes, attributes);
    this.writes.push({ conversationId, participantId, attributes: { ...attributes }, at: new Date().toISOString() });
    send(res, 200, { attributes: { ...p.attributes } });
  }
}

/** Why a PATCH body is not `{ attributes: { string: string } }` (ParticipantAttributes), or undefined. */
function attributesBodyProblem(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'body is not an object';
  const keys = Object.keys(v);
  if (keys.length !== 1 || keys[0] !== 'attributes') return `body keys [${keys.join(',')}] (must be exactly [attributes])`;
  const a = (v as { attributes: unknown }).attributes;
  if (a === null || typeof a !== 'object' || Array.isArray(a)) return 'attributes is not an object';
  if (Object.keys(a).length === 0) return 'attributes is empty';
  for (const [k, x] of Object.entries(a as Record<string, unknown>)) {
    if (typeof x !== 'string') return `attribute ${k} is not a string`;
    if (k === '') return 'an attribute name is empty';
  }
  return undefined;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'inin-correlation-id': randomUUID() });
  res.end(text);
}
