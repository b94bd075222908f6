import type { Brand } from '../brand.js';
import { validateExpiry } from '../card.js';
import type { DeclineClass } from '../outcome.js';
import { readAmount, readDigits, readExpiry, readReference, readSensitiveDigits } from '../readback.js';
import type { CardField, DialogueState, MenuKind } from './state.js';

/**
 * What the dialogue says: prompt fragment lists built from phrase ids (src/domain/prompts/phrases.ts)
 * and readback fragments (src/domain/readback.ts). Card readbacks are rebuilt from the buffers each
 * time they are played, so the state never holds a fragment list that spells card digits.
 */

interface Prompt {
  fragments: string[];
  bargeIn: boolean;
  /** The fragments spell card data (never log them). */
  sensitive: boolean;
}

/** The longest transaction id read back to the caller; longer PSP ids (pi_3Mt...) are not speakable. */
const MAX_SPOKEN_TRANSACTION_ID = 12;
/** The longest context payment reference read back when the transaction id is too long. */
const MAX_SPOKEN_REFERENCE = 20;

export function entryPromptId(field: CardField | 'amount', codeLength: 3 | 4): string {
  switch (field) {
    case 'amount':
      return 'enter-amount';
    case 'pan':
      return 'enter-card-number';
    case 'expiry':
      return 'enter-expiry';
    case 'securityCode':
      return codeLength === 4 ? 'enter-security-code-4' : 'enter-security-code-3';
  }
}

export function brandNotAcceptedId(brand: Brand): string {
  return `brand-not-accepted-${brand}`;
}

function need<T>(v: T | undefined, what: string): T {
  // Reaching a menu without its data is a bug in the machine: step() turns it into outcome `error`.
  if (v === undefined) throw new Error(`dialogue invariant: ${what} missing`);
  return v;
}

/** The amount from the context when it can be charged as is (within the profile's bounds). */
export function usableContextAmount(s: DialogueState): number | undefined {
  const a = s.input.context.amount;
  const { minAmount, maxAmount } = s.input.settings;
  if (typeof a !== 'number' || !Number.isSafeInteger(a)) return undefined;
  return a >= Math.max(minAmount, 1) && a <= maxAmount ? a : undefined;
}

export function menuPrompt(s: DialogueState, menu: MenuKind): Prompt {
  const { language: lang, currency } = s.input.settings;
  switch (menu) {
    case 'amount-context':
      // Barge-in over the whole announcement: callers who know the menu answer before it is said,
      // and a key that only waited for the end made their card digits that followed menu choices.
      return {
        fragments: ['you-are-about-to-pay', ...readAmount(lang, need(s.amount, 'amount'), currency), 'amount-context-menu'],
        bargeIn: true,
        sensitive: false,
      };
    case 'amount-choice':
      return {
        fragments: ['balance-is', ...readAmount(lang, need(usableContextAmount(s), 'context amount'), currency), 'choice-menu'],
        bargeIn: true,
        sensitive: false,
      };
    case 'confirm-amount':
      return {
        fragments: ['you-entered', ...readAmount(lang, need(s.amount, 'amount'), currency), 'confirm-menu'],
        bargeIn: true,
        sensitive: false,
      };
    case 'confirm-pan':
      // Masked readback (last 4 only): the call audio may be recorded on the Genesys side.
      return {
        fragments: ['card-ending-in', ...readDigits(lang, need(s.card.pan, 'pan').lastDigits(4)), 'confirm-menu'],
        bargeIn: true,
        sensitive: true,
      };
    case 'confirm-expiry': {
      const e = validateExpiry(need(s.card.expiry, 'expiry'), s.input.now);
      if (!e.ok) throw new Error('dialogue invariant: confirmed expiry invalid');
      return { fragments: ['you-entered', ...readExpiry(lang, e.month, e.year), 'confirm-menu'], bargeIn: true, sensitive: true };
    }
    case 'confirm-security-code':
      return {
        fragments: ['you-entered', ...readSensitiveDigits(lang, need(s.card.securityCode, 'security code')), 'confirm-menu'],
        bargeIn: true,
        sensitive: true,
      };
    case 'other-card':
      return { fragments: ['other-card-menu'], bargeIn: true, sensitive: false };
  }
}

/** What the caller is told about a decline (fraud never gets a specific reason). */
export function declineMessageId(cls: DeclineClass): string {
  switch (cls) {
    case 'insufficient-funds':
      return 'declined-insufficient-funds';
    case 'incorrect-cvc':
      return 'declined-incorrect-cvc';
    case 'expired-card':
      return 'declined-expired-card';
    case 'incorrect-number':
      return 'declined-incorrect-number';
    case 'fraud':
      return 'payment-not-processed';
    case 'do-not-honor':
    case 'processing-error':
      return 'declined-generic';
  }
}

/**
 * The reference spoken after an approval: the PSP transaction id when it is short enough to be
 * useful by phone, else the payment reference from the context when short, else none.
 */
function spokenReference(s: DialogueState): string | undefined {
  const txn = s.transactionId;
  if (txn !== undefined && txn.length > 0 && txn.length <= MAX_SPOKEN_TRANSACTION_ID) return txn;
  const ref = s.input.context.reference;
  if (ref !== undefined && ref.length > 0 && ref.length <= MAX_SPOKEN_REFERENCE) return ref;
  return undefined;
}

export function approvedAnnouncement(s: DialogueState): string[] {
  const { language: lang, currency } = s.input.settings;
  const out = ['payment-approved', 'amount-paid', ...readAmount(lang, need(s.amount, 'amount'), currency)];
  const ref = spokenReference(s);
  const spoken = ref === undefined ? [] : readReference(lang, ref);
  if (spoken.length > 0) out.push('your-reference-is', ...spoken);
  out.push('thank-you');
  return out;
}
