import { FIRST_KEY_PAUSE_MS, type DtmfStep } from './dtmf-pcap.js';

/**
 * The keys of a Genesys-transferred payment as a caller presses them, for SIPp's RFC 2833 pcap:
 * one place for the timing every end-to-end suite shares.
 */

export const TEST_EXPIRY = '1234';

/** Confirms the amount read from the context (1), as soon as the media flows. */
export const CONFIRM_AMOUNT: readonly DtmfStep[] = [{ pauseMs: FIRST_KEY_PAUSE_MS }, { keys: '1' }, { pauseMs: 1_000 }];

export interface CardKeys {
  expiry?: string;
  cvc?: string;
  /** End the card number with '#' (an Amex at 15 digits ends by itself). */
  endWithHash?: boolean;
}

/** Card number, its readback confirmed, expiry, confirmed, security code. */
export function cardSteps(pan: string, o: CardKeys = {}): DtmfStep[] {
  const { expiry = TEST_EXPIRY, cvc = '737', endWithHash = true } = o;
  return [{ keys: endWithHash ? `${pan}#` : pan }, { pauseMs: 600 }, { keys: '1' }, { pauseMs: 600 }, { keys: expiry }, { pauseMs: 600 }, { keys: '1' }, { pauseMs: 600 }, { keys: cvc }];
}

/** A whole payment: the amount confirmed, then the card. */
export function paymentSteps(pan: string, o: CardKeys = {}): DtmfStep[] {
  return [...CONFIRM_AMOUNT, ...cardSteps(pan, o)];
}
