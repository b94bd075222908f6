import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import type { PspConfig, RetryConfig } from '../config/schema.js';
import type { PspAdapter } from './adapter.js';
import { ResilientGateway } from './resilient.js';
import { StripeGateway } from './stripe.js';
import { AdyenGateway, ADYEN_API_VERSION, adyenBaseUrl } from './adyen.js';
import { RestGateway } from './rest.js';
import { loadSecret } from './secrets.js';
import { startSandbox, type Sandbox } from './sandbox/index.js';

export type { PspAdapter } from './adapter.js';
export { ResilientGateway } from './resilient.js';

export { StripeGateway } from './stripe.js';
export { AdyenGateway } from './adyen.js';
export { RestGateway } from './rest.js';

export { newIdempotencyKey } from './idempotency.js';

export { startSandbox, type Sandbox } from './sandbox/index.js';

/** Keys a standalone sandbox accepts by default (any sk_test_ key / any Adyen key). */
const SANDBOX_STRIPE_KEY = 'sk_test_pay_ivr_sandbox';
const SANDBOX_ADYEN_KEY = 'pay-ivr-sandbox-key';
const SANDBOX_MERCHANT = 'PayIvrSandbox';

export interface GatewayHandle {
  /** The resilient gateway the call layer charges through (never throws from charge()). */
  gateway: ResilientGateway;
  /** The in-process simulator, when this gateway started one. */
  sandbox?: Sandbox | undefined;
  /** Closes the gateway and, if any, its in-process sandbox. Idempotent. */
  close(): Promise<void>;
}

interface CreateGatewayOptions {
  /** Config path of this PSP block, for error messages (default "psp"). */
  configPath?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * The factory the call layer uses: one resilient gateway per profile. `sandbox` without a URL
 * starts the built-in simulator on an ephemeral 127.0.0.1 port (or psp.listenPort) and points the
 * Stripe or Adyen adapter (per `face`) at it, so `npm start` charges with no account anywhere.
 */
export async function createGateway(psp: PspConfig, retry: RetryConfig, logger: Logger, opts: CreateGatewayOptions = {}): Promise<GatewayHandle> {
  const where = opts.configPath ?? 'psp';
  const env = opts.env ?? process.env;
  let sandbox: Sandbox | undefined;
  let adapter: PspAdapter;
  switch (psp.type) {
    case 'sandbox': {
      let url = psp.url?.replace(/\/+$/, '');
      let stripeKey = SANDBOX_STRIPE_KEY;
      let adyenKey = SANDBOX_ADYEN_KEY;
      if (!url) {
        // A fresh key per in-process sandbox: nothing else on the host can charge through it.
        stripeKey = `sk_test_${randomBytes(12).toString('hex')}`;
        adyenKey = randomBytes(16).toString('hex');
        sandbox = await startSandbox({ host: '127.0.0.1', port: psp.listenPort ?? 0, stripeKeys: [stripeKey], adyenKeys: [adyenKey], logger: logger.child({ component: 'psp-sandbox' }) });
        url = sandbox.url;
      }
      adapter =
        psp.face === 'adyen'
          ? new AdyenGateway({ apiKey: adyenKey, merchantAccount: SANDBOX_MERCHANT, baseUrl: `${url}/${ADYEN_API_VERSION}`, timeoutMs: psp.timeoutMs, logger, name: 'sandbox-adyen' })
          : new StripeGateway({ apiKey: stripeKey, baseUrl: url, timeoutMs: psp.timeoutMs, logger, name: 'sandbox-stripe' });
      break;
    }
    case 'stripe': {
      const apiKey = loadSecret({ env: psp.apiKeyEnv, file: psp.apiKeyFile, configPath: where, what: 'Stripe secret key' }, env);
      adapter = new StripeGateway({ apiKey, baseUrl: psp.baseUrl, timeoutMs: psp.timeoutMs, logger });
      break;
    }
    case 'adyen': {
      const apiKey = loadSecret({ env: psp.apiKeyEnv, file: psp.apiKeyFile, configPath: where, what: 'Adyen API key' }, env);
      adapter = new AdyenGateway({ apiKey, merchantAccount: psp.merchantAccount, baseUrl: adyenBaseUrl(psp), timeoutMs: psp.timeoutMs, logger });
      break;
    }
    case 'rest': {
      const authValue = psp.authFile || psp.authEnv ? loadSecret({ env: psp.authEnv, file: psp.authFile, configPath: where, what: 'REST gateway auth header value' }, env) : undefined;
      adapter = new RestGateway({ config: psp, authValue, logger, configPath: where });
      break;
    }
  }
  const gateway = new ResilientGateway(adapter, { ...retry, logger });
  logger.info({ gateway: gateway.name, capabilities: adapter.capabilities, sandbox: sandbox?.url }, 'PSP gateway ready');
  let closed = false;
  return {
    gateway,
    sandbox,
    close: async () => {
      if (closed) return;
      closed = true;
      await gateway.close();
      await sandbox?.close();
    },
  };
}
