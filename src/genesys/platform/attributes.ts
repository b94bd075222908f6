import type { GenesysPlatformConfig } from '../../config/genesys-platform-schema.js';
import { findCardData } from '../../domain/card-data-guard.js';
import { currencyExponent, formatMajor } from '../../domain/money.js';
import type { PaymentResult } from '../../domain/outcome.js';
import { PayIvrError } from '../../errors.js';

/**
 * The participant data written onto the Genesys conversation for one payment result: pure.
 *
 * - `amount` is in MAJOR units with a `.` ("49.90" EUR, "500" JPY), as the UUI `amt` is, so a
 *   flow compares it with what it sent; `currency` always goes with it.
 * - `pspReference` is the PSP's id of the charge (`transactionId`: Stripe's PaymentIntent id,
 *   Adyen's pspReference), the one a refund or a dispute quotes. The payment reference of the
 *   context (`reference`) is not written: the flow sent it and already has it.
 * - `attempts` counts the charges sent to the PSP.
 * - `entry` says whether pay-ivr was transferred in or conferenced in by an agent, so a flow
 *   or a report tells a conference leg (no hand-back REFER) from a transfer.
 * - `origin` is `call` unless reconciliation settled the result after the call.
 * - `updatedAt` is when the result last changed: the reconciliation time, else the end of the
 *   call, else its start.
 * Absent fields are left out (Genesys keeps the value an earlier write set for them).
 */

type Field = keyof GenesysPlatformConfig['attributes'];
type NamingConfig = Pick<GenesysPlatformConfig, 'attributePrefix' | 'attributes'>;

/** Field values keyed the way the card-data guard knows them (`transactionId` holds the PSP reference). */
type GuardedValues = Partial<Record<Exclude<Field, 'reference'> | 'transactionId', string>>;

function refuse(path: string, rule: string): never {
  throw new PayIvrError('ERR_PARTICIPANT_DATA', `participant data refused: ${rule} at ${path}`, { details: { path, rule } });
}

/** Builds the attributes; throws ERR_PARTICIPANT_DATA (path and rule, never the value) when any value looks like card data. */
export function participantAttributes(result: PaymentResult, cfg: NamingConfig, nodeId: string): Record<string, string> {
  const values: GuardedValues = {
    outcome: result.outcome,
    mode: result.mode,
    // Absent on records older than the entry modes: left out, not guessed.
    entry: result.entry,
    currency: result.currency,
    amountSource: result.amountSource,
    brand: result.brand,
    last4: result.last4,
    transactionId: result.transactionId,
    attempts: String(result.attempts.charges),
    declineClass: result.declineClass,
    node: nodeId,
    errorReason: result.errorReason,
    origin: result.origin ?? 'call',
    updatedAt: result.reconciledAt ?? result.timings?.endedAt ?? result.timings?.startedAt,
  };
  if (result.amount !== undefined) {
    if (currencyExponent(result.currency) === undefined) refuse('$.currency', 'unknown-currency');
    values.amount = formatMajor(result.amount, result.currency);
  }
  // Masked PAN is the last 4 digits and nothing else.
  if (values.last4 !== undefined && !/^[0-9]{4}$/.test(values.last4)) refuse('$.last4', 'not-last4');
  // The same rule as every store write: a value that looks like card data refuses the whole write.
  const finding = findCardData(values);
  if (finding !== undefined) refuse(finding.path, finding.rule);

  const out: Record<string, string> = {};
  for (const [field, value] of Object.entries(values) as [keyof GuardedValues, string | undefined][]) {
    if (value === undefined || value === '') continue;
    const name = cfg.attributes[field === 'transactionId' ? 'reference' : field];
    out[`${cfg.attributePrefix}${name}`] = value;
  }
  return out;
}
