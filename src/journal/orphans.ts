import type { Logger } from '../log.js';
import type { ResultStore } from '../store/types.js';
import type { TelephonyBackend } from '../telephony/types.js';
import { describeError } from '../errors.js';
import type { PaymentJournal } from './journal.js';
import type { OrphanDialog } from './types.js';

/** Reason of the BYE a restarted node sends in the calls it had in progress. */
const ORPHAN_REASON = { protocol: 'SIP', cause: 503, text: 'pay-ivr restarted during the call' } as const;

/**
 * Ends the calls a previous run of this node had in progress (their dialog state is in the
 * spool): a result is written for each call that has none (outcome `error`, origin
 * `reconciled`; reconciliation then records the real outcome of any charge), then a BYE is sent
 * so that the caller does not wait in silence. Returns how many calls were ended.
 */
export async function endOrphanedCalls(opts: { journal: PaymentJournal; results: ResultStore; backend: TelephonyBackend; logger: Logger; now?: () => Date }): Promise<number> {
  const { journal, results, backend, logger } = opts;
  const now = opts.now ?? (() => new Date());
  const orphans = journal.dialogs();
  if (orphans.length === 0) return 0;
  logger.warn({ calls: orphans.length }, 'calls left in progress by a previous run: ending them');
  // A call whose charge was with the PSP when the node died may have been charged.
  const charging = new Set((await journal.openAttempts()).map((a) => a.callRef));
  await Promise.all(
    orphans.map(async (o) => {
      try {
        await recordOrphan(o, results, now(), charging.has(o.callRef));
      } catch (e) {
        logger.error({ err: describeError(e), call: o.callRef }, 'result of an orphaned call not stored');
      }
      let status: number | undefined;
      // The backend that kept the dialog ends it (records written before the field named drachtio
      // said 'embedded' for every dialog: drachtio's carry drachtio-server's dialog id).
      const owner = o.dialog.drachtio !== undefined ? 'drachtio' : o.backend;
      if (backend.endStoredDialog !== undefined && owner === backend.name) {
        try {
          status = await backend.endStoredDialog(o.dialog, ORPHAN_REASON);
        } catch (e) {
          logger.warn({ err: describeError(e), call: o.callRef }, 'BYE of an orphaned call failed');
        }
      }
      logger.info({ call: o.callRef, callId: o.dialog.callId, byeStatus: status }, 'orphaned call ended');
      await journal.dropDialog(o.callRef);
    }),
  );
  return orphans.length;
}

/**
 * The interim result of a call a crash cut: `unconfirmed` when a charge attempt was open (the PSP
 * may have charged; reconciliation settles it and replaces this record), else `error` (nothing was
 * sent to the PSP). Genesys may read it before reconciliation does: it must not say "not charged".
 */
async function recordOrphan(o: OrphanDialog, results: ResultStore, at: Date, charging: boolean): Promise<void> {
  const existing = await results.getById(o.callRef);
  const handBack = { target: '', status: 'skipped', detail: 'pay-ivr restarted during the call; ended with BYE' } as const;
  if (existing !== undefined) {
    // Written when the charge outcome was known; the call then never reached its end.
    if (existing.stage === 'ended') return;
    const { savedAt: _savedAt, ...r } = existing;
    await results.saveResult({ ...r, stage: 'ended', handBack, timings: { ...(r.timings ?? { startedAt: o.startedAt }), endedAt: at.toISOString() } });
    return;
  }
  await results.saveResult({
    id: o.callRef,
    outcome: charging ? 'unconfirmed' : 'error',
    mode: o.mode,
    currency: o.currency,
    reference: o.reference,
    accountId: o.accountId,
    conversationId: o.conversationId,
    attempts: { charges: 0, declines: 0, invalidEntries: 0 },
    callId: o.dialog.callId,
    profile: o.profile,
    handBack,
    timings: { startedAt: o.startedAt, endedAt: at.toISOString() },
    stage: 'ended',
    origin: 'reconciled',
    reconciledAt: at.toISOString(),
  });
}
