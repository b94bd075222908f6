import type { Logger } from '../log.js';
import { PayIvrError } from '../errors.js';
import { findCardData, recordIdForLog } from '../domain/card-data-guard.js';

/**
 * Throws ERR_STORE (and logs an error naming the path, never the value) when `record` holds
 * card-like data (the rule: `src/domain/card-data-guard.ts`). Every result and live-call write
 * of the store and the journal goes through it. `what` names the record kind in the log line.
 */
export function assertNoCardData(record: unknown, what: 'result' | 'live call', recordId: string, log: Logger): void {
  const finding = findCardData(record);
  if (finding === undefined) return;
  log.error({ recordId: recordIdForLog(recordId), path: finding.path, rule: finding.rule }, `refused to store a ${what} that looks like card data`);
  throw new PayIvrError('ERR_STORE', `${what} refused: card-like data at ${finding.path}`, { details: { ...finding } });
}
