import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import platformClient from 'purecloud-platform-client-v2';
import type { GenesysPlatformConfig } from '../../config/genesys-platform-schema.js';
import { recordIdForLog } from '../../domain/card-data-guard.js';
import { PayIvrError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { ParticipantDataWriter, WriteVerdict } from './types.js';

/**
 * One participant-data write on the Genesys Cloud Platform API, through the official SDK:
 * client-credentials login (token kept until shortly before it expires), the customer
 * participant found once per conversation (GET /api/v2/conversations/{id}), then PATCH
 * /api/v2/conversations/calls/{id}/participants/{id}/attributes. Never retries by itself
 * beyond one re-login on a 401: the write-back queue owns retries and their timing.
 *
 * Logs carry the conversation id, attribute NAMES, statuses and error codes: never a value,
 * the token, the secret, or an SDK error object (axios errors hold the request headers).
 */

type SdkClient = typeof platformClient.ApiClient;

/** A Platform API answer with returnExtendedResponses on: resolved on 2xx, rejected otherwise. */
interface Extended {
  status: number;
  headers?: Record<string, unknown>;
  body?: unknown;
}

/** How one SDK call ended, reduced to what the verdict needs. */
type CallEnd =
  | { ok: true; status: number; body: unknown }
  | { ok: false; status?: number | undefined; retryAfter?: string | undefined; code: string; login?: boolean };

export interface WriterOptions {
  /** Clock for the token's lifetime (tests). */
  now?: () => number;
}

/** Conversations remembered with their customer participant id; the oldest is dropped beyond this. */
const PARTICIPANT_CACHE_MAX = 10_000;
/** Genesys conversation ids are UUIDs: anything else is refused before a request is made. */
const CONVERSATION_ID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

function requireEnv(env: NodeJS.ProcessEnv, name: string, setting: string): string {
  const v = env[name];
  if (v === undefined || v === '') {
    throw new PayIvrError('ERR_CONFIG_INVALID', `genesys.platform.${setting}: environment variable ${name} is not set`, { details: { variable: name } });
  }
  return v;
}

/**
 * A fresh SDK client of our own (not the SDK's shared `ApiClient.instance`), cut off from the
 * SDK's home-directory config file, its logger and its refresh-token handling.
 */
function sdkClient(cfg: GenesysPlatformConfig, agent: Agent): SdkClient {
  const Ctor = (platformClient as unknown as { ApiClientClass: new () => SdkClient }).ApiClientClass;
  const client = new Ctor();
  // The constructor reads ~/.genesyscloudjavascript/config and polls it: a file there could
  // reroute the requests or turn on request logging. Stop the polling and undo what it set.
  client.config.setConfigPath('');
  client.config.live_reload_config = false;
  client.config.refresh_access_token = false;
  client.config.gateway = undefined;
  client.config.logger.log_level = 'none';
  client.config.logger.log_request_body = false;
  client.config.logger.log_response_body = false;
  client.config.logger.setLogger();
  client.setEnvironment(cfg.region);
  if (cfg.gateway !== undefined) {
    client.setGateway({ host: cfg.gateway.host, protocol: cfg.gateway.protocol, ...(cfg.gateway.port === undefined ? {} : { port: cfg.gateway.port }) });
  }
  // Status and headers (Retry-After) on every answer, not just the body.
  client.setReturnExtendedResponses(true);
  client.setProxyAgent(agent);
  // The SDK's HTTP client takes its deadline when it is created; set ours on it.
  client.getHttpClient().setTimeout(cfg.timeoutMs);
  return client;
}

/** The CA list: the public roots plus the configured one (a gateway's), not instead of them. */
function httpsAgent(cfg: GenesysPlatformConfig): Agent {
  if (cfg.caFile === undefined) return new Agent({ keepAlive: true });
  let pem: string;
  try {
    pem = readFileSync(cfg.caFile, 'utf8');
  } catch (e) {
    throw new PayIvrError('ERR_CONFIG_READ', `genesys.platform.caFile: cannot read ${cfg.caFile}`, { cause: e });
  }
  return new Agent({ keepAlive: true, ca: [...rootCertificates, pem] });
}

/** Retry-After in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^[0-9]+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function headerValue(headers: Record<string, unknown> | undefined, name: string): string | undefined {
  const v = headers?.[name];
  return typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined;
}

/** What a rejected SDK promise carried: an extended answer (HTTP status) or a transport error. */
function callEnd(e: unknown): CallEnd & { ok: false } {
  if (e !== null && typeof e === 'object') {
    const o = e as { status?: unknown; headers?: Record<string, unknown>; code?: unknown; response?: { status?: unknown; headers?: Record<string, unknown> } };
    // Extended answer (API calls) or an axios error with a response (the login).
    const status = typeof o.status === 'number' ? o.status : typeof o.response?.status === 'number' ? o.response.status : undefined;
    const headers = typeof o.status === 'number' ? o.headers : o.response?.headers;
    if (status !== undefined) return { ok: false, status, retryAfter: headerValue(headers, 'retry-after'), code: `HTTP ${status}` };
    if (typeof o.code === 'string') return { ok: false, code: o.code };
  }
  return { ok: false, code: e instanceof Error ? e.name : 'unknown error' };
}

/** The verdict for a failed call. 401 reaches here only after the re-login and retry. */
function failureVerdict(end: CallEnd & { ok: false }, what: string, now: number): WriteVerdict {
  const s = end.status;
  // A login that failed, whatever its status, is worth trying again later: credentials get fixed.
  if (end.login === true) return { kind: 'retry', why: `${what}: ${end.code}`, afterMs: s === 429 ? retryAfterMs(end.retryAfter, now) : undefined };
  if (s === undefined) return { kind: 'retry', why: `${what}: ${end.code}` };
  if (s === 429) return { kind: 'retry', why: `${what}: 429`, afterMs: retryAfterMs(end.retryAfter, now) };
  if (s >= 500 || s === 401 || s === 408 || s === 409 || s === 425) return { kind: 'retry', why: `${what}: ${s}`, afterMs: s === 503 ? retryAfterMs(end.retryAfter, now) : undefined };
  return { kind: 'rejected', why: `${what}: ${s}`, status: s };
}

/** The caller's participant: purpose customer (inbound), else external; a connected one first. */
function customerParticipantId(body: unknown): string | undefined {
  const ps = (body as { participants?: unknown } | null)?.participants;
  if (!Array.isArray(ps)) return undefined;
  const list = ps.filter((p): p is { id: string; purpose?: unknown; endTime?: unknown } => p !== null && typeof p === 'object' && typeof (p as { id?: unknown }).id === 'string');
  for (const purpose of ['customer', 'external']) {
    const same = list.filter((p) => p.purpose === purpose);
    const pick = same.find((p) => p.endTime === undefined) ?? same[0];
    if (pick !== undefined) return pick.id;
  }
  return undefined;
}

class SdkParticipantDataWriter implements ParticipantDataWriter {
  private readonly client: SdkClient;
  private readonly conversations: InstanceType<typeof platformClient.ConversationsApi>;
  private readonly participants = new Map<string, string>();
  private expiresAt = 0;
  /** Bumped at each login, so a 401 on an old token does not log in again after another write already did. */
  private generation = 0;
  private login: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly cfg: GenesysPlatformConfig,
    private readonly log: Logger,
    private readonly clientId: string,
    private readonly clientSecret: string,
    private readonly agent: Agent,
    private readonly now: () => number,
  ) {
    this.client = sdkClient(cfg, agent);
    this.conversations = new platformClient.ConversationsApi(this.client);
  }

  async write(conversationId: string, attributes: Readonly<Record<string, string>>): Promise<WriteVerdict> {
    const logId = recordIdForLog(conversationId);
    if (this.closed) return { kind: 'retry', why: 'writer closed' };
    if (!CONVERSATION_ID.test(conversationId)) return this.done({ kind: 'rejected', why: 'not a Genesys conversation id' }, logId, attributes);
    if (Object.keys(attributes).length === 0) return this.done({ kind: 'rejected', why: 'no attributes' }, logId, attributes);

    let participantId = this.participants.get(conversationId);
    if (participantId === undefined) {
      const got = await this.authorized(() => this.conversations.getConversation(conversationId));
      if (!got.ok) return this.done(failureVerdict(got, 'get conversation', this.now()), logId, attributes);
      participantId = customerParticipantId(got.body);
      if (participantId === undefined) return this.done({ kind: 'rejected', why: 'no customer participant on the conversation' }, logId, attributes);
      this.remember(conversationId, participantId);
    }
    const pid = participantId;
    const patched = await this.authorized(() => this.conversations.patchConversationsCallParticipantAttributes(conversationId, pid, { attributes: { ...attributes } }));
    if (!patched.ok) {
      // The participant may be gone (conversation ended, purged): look it up afresh next time.
      if (patched.status === 404) this.participants.delete(conversationId);
      return this.done(failureVerdict(patched, 'patch attributes', this.now()), logId, attributes);
    }
    return this.done({ kind: 'written' }, logId, attributes);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.participants.clear();
    this.client.clearAccessToken();
    this.expiresAt = 0;
    this.agent.destroy();
    await Promise.resolve();
  }

  private done(v: WriteVerdict, conversationId: string, attributes: Readonly<Record<string, string>>): WriteVerdict {
    const names = Object.keys(attributes);
    if (v.kind === 'written') this.log.debug({ conversationId, names }, 'participant data written to Genesys');
    else this.log.warn({ conversationId, names, verdict: v.kind, why: v.why, status: v.kind === 'rejected' ? v.status : undefined }, 'participant data not written to Genesys');
    return v;
  }

  private remember(conversationId: string, participantId: string): void {
    if (this.participants.size >= PARTICIPANT_CACHE_MAX) {
      const oldest = this.participants.keys().next();
      if (oldest.done !== true) this.participants.delete(oldest.value);
    }
    this.participants.set(conversationId, participantId);
  }

  /** Runs an API call with a valid token; a 401 logs in again once and repeats the call once. */
  private async authorized(call: () => Promise<unknown>): Promise<CallEnd> {
    const first = await this.ensureToken(false);
    if (first !== undefined) return first;
    const gen = this.generation;
    const end = await this.attempt(call);
    if (end.ok || end.status !== 401 || this.closed) return end;
    this.log.info({ status: 401 }, 'Genesys refused the access token: logging in again');
    const again = await this.ensureToken(gen === this.generation);
    if (again !== undefined) return again;
    return this.attempt(call);
  }

  private async attempt(call: () => Promise<unknown>): Promise<CallEnd> {
    try {
      const r = (await call()) as Extended;
      return { ok: true, status: r.status, body: r.body };
    } catch (e) {
      return callEnd(e);
    }
  }

  /** Logs in when there is no token, it is about to expire, or `force`; concurrent writes share one login. Returns a failure, or undefined. */
  private async ensureToken(force: boolean): Promise<(CallEnd & { ok: false }) | undefined> {
    if (!force && this.now() < this.expiresAt) return undefined;
    this.login ??= this.doLogin().finally(() => {
      this.login = undefined;
    });
    try {
      await this.login;
      return undefined;
    } catch (e) {
      const end = callEnd(e);
      const level = end.status === 400 || end.status === 401 ? 'error' : 'warn';
      this.log[level]({ status: end.status, code: end.code }, level === 'error' ? 'Genesys login refused: check the OAuth client id and secret' : 'Genesys login failed');
      return { ...end, code: `login ${end.code}`, login: true };
    }
  }

  private async doLogin(): Promise<void> {
    const auth = await this.client.loginClientCredentialsGrant(this.clientId, this.clientSecret);
    // The SDK dates the expiry with its own clock; carry the remaining lifetime over to ours.
    const lifetime = Math.max(0, auth.tokenExpiryTime - Date.now());
    // Renew a minute early (half the lifetime for short tokens), so no request carries a token that expires on the way.
    this.expiresAt = this.now() + lifetime - Math.min(60_000, lifetime / 2);
    this.generation += 1;
    this.log.info({ expiresInS: Math.round(lifetime / 1000) }, 'logged in to Genesys Cloud');
  }
}

/**
 * The participant-data writer for `genesys.platform`. Throws ERR_CONFIG_INVALID naming the
 * variable when the client id or secret is missing from `env`, ERR_CONFIG_READ when caFile
 * cannot be read.
 */
export function createParticipantDataWriter(config: GenesysPlatformConfig, logger: Logger, env: NodeJS.ProcessEnv = process.env, options: WriterOptions = {}): ParticipantDataWriter {
  const clientId = requireEnv(env, config.clientIdEnv, 'clientIdEnv');
  const clientSecret = requireEnv(env, config.clientSecretEnv, 'clientSecretEnv');
  const log = logger.child({ component: 'genesys-platform' });
  return new SdkParticipantDataWriter(config, log, clientId, clientSecret, httpsAgent(config), options.now ?? Date.now);
}
