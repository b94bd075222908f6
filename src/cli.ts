#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { loadConfig } from './config/load.js';
import { createLogger } from './log.js';
import { describeError, isPayIvrError } from './errors.js';

const USAGE = `usage: pay-ivr <command> [options]

commands:
  serve [--config FILE]        answer calls (embedded SIP/RTP engine by default)
  check-config [FILE]          validate a config file (or PAYIVR_CONFIG / built-in defaults)
  prompts check [--config F]   check that every prompt fragment exists in every pack
  reconcile [--config F]       settle every open payment attempt by a PSP lookup, print what was settled
  drain [--config F]           ask the running node (admin API of the config) to drain: no new
                               calls, calls in progress finish, then it exits

FILE defaults to $PAYIVR_CONFIG; with neither, the built-in defaults apply.`;

function fail(message: string, code = 1): never {
  process.stderr.write(`pay-ivr: ${message}\n`);
  process.exit(code);
}

async function serve(configPath: string | undefined): Promise<void> {
  const config = loadConfig(configPath);
  const logger = createLogger({ level: config.log.level, ...(config.log.file ? { destination: config.log.file } : {}) });
  const { startApp } = await import('./app.js');
  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ why }, 'stopping');
    app.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        logger.error({ err: describeError(e) }, 'stop failed');
        process.exit(1);
      },
    );
  };
  // The edge role anchors its media on rtpengine (edge.rtpengine, required when edge.enabled).
  const mediaAnchor = config.edge.enabled ? (await import('./edge/rtpengine-anchor.js')).openRtpengineAnchor : undefined;
  // genesys.platform: the result written onto the conversation through the Platform API.
  const participantData = config.genesys.platform.enabled ? (await import('./genesys/platform/participant-data.js')).participantDataDeps : undefined;
  const app = await startApp(config, logger, {
    onDrained: () => stop('drained'),
    ...(mediaAnchor !== undefined ? { mediaAnchor } : {}),
    ...(participantData !== undefined ? { participantData } : {}),
  });
  const { drachtio } = config.telephony;
  const sip = config.telephony.backend === 'drachtio' ? `drachtio-server ${drachtio.host}:${drachtio.port}` : config.sip.listen.map((l) => `${l.transport}:${l.host}:${l.port}`).join(', ');
  // The drachtio backend may still be connecting: say so rather than claim readiness.
  logger.info({ backend: app.backend.name, sip, ready: app.backend.ready, admin: app.adminPort || 'off', profiles: Object.keys(config.profiles) }, 'pay-ivr started');
  // SIGTERM (orchestrators, rolling restarts) drains first; a second SIGTERM or SIGINT stops now.
  let drainSignalled = false;
  process.on('SIGTERM', () => {
    if (drainSignalled) return stop('SIGTERM again');
    drainSignalled = true;
    logger.info({ signal: 'SIGTERM' }, 'draining before exit');
    void app.drain().then(() => stop('drained'));
  });
  process.on('SIGINT', () => stop('SIGINT'));
}

async function requestDrain(configPath: string | undefined): Promise<void> {
  const config = loadConfig(configPath);
  const token = config.admin.apiToken;
  if (!config.admin.enabled || token === undefined) fail('drain needs the admin API with admin.apiToken (PAYIVR_API_TOKEN)');
  const host = config.admin.host.includes(':') ? `[${config.admin.host}]` : config.admin.host;
  const url = `http://${host}:${config.admin.port}/v1/admin/drain`;
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
  } catch (e) {
    fail(`no pay-ivr node answers at ${url}: ${describeError(e)}`);
  }
  const body = (await res.json().catch(() => ({}))) as { activeCalls?: unknown; error?: unknown };
  if (res.status !== 202) fail(`drain refused by ${url}: HTTP ${res.status} ${String(body.error ?? '')}`);
  process.stdout.write(`draining: ${String(body.activeCalls)} call(s) in progress; the node exits when they are done\n`);
}

async function checkPrompts(configPath: string | undefined): Promise<void> {
  const config = loadConfig(configPath);
  const { checkPromptPacks } = await import('./prompts-check.js');
  const missing = checkPromptPacks(config.promptsDir);
  if (missing.length > 0) fail(`missing prompt files:\n${missing.join('\n')}`);
  process.stdout.write('prompt packs complete\n');
}

async function reconcile(configPath: string | undefined): Promise<void> {
  const config = loadConfig(configPath);
  // Logs to stderr: stdout carries the report.
  const logger = createLogger({ level: config.log.level === 'info' ? 'warn' : config.log.level, destination: config.log.file ?? pino.destination({ dest: 2, sync: true }) });
  const { reconcileOnce } = await import('./reconcile-cli.js');
  const entries = await reconcileOnce(config, logger, (l) => process.stdout.write(`${l}\n`));
  // Exit 3 when attempts stay open, so scripts can retry later.
  process.exit(entries.some((e) => e.outcome === 'open') ? 3 : 0);
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  const { values, positionals } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true });
  if (values.help || cmd === undefined || cmd === 'help' || cmd === '--help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  switch (cmd) {
    case 'serve':
      return serve(values.config);
    case 'check-config': {
      const file = positionals[0] ?? values.config;
      loadConfig(file);
      process.stdout.write(`${file ?? 'built-in defaults'}: ok\n`);
      return;
    }
    case 'reconcile':
      return reconcile(values.config);
    case 'drain':
      return requestDrain(values.config);
    case 'prompts':
      if (positionals[0] !== 'check') fail(USAGE, 2);
      return checkPrompts(values.config);
    default:
      fail(`unknown command "${cmd}"\n${USAGE}`, 2);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (isPayIvrError(e, 'ERR_CONFIG_INVALID') || isPayIvrError(e, 'ERR_CONFIG_READ')) fail(`invalid configuration:\n${e.message}`);
  fail(describeError(e));
});
