import type { Config, Profile } from './schema.js';
import { readbackFor, type EntryMode } from '../domain/entry.js';
import type { DialogueSettings } from '../domain/dialogue/types.js';

interface SelectedProfile {
  name: string;
  profile: Profile;
}

/**
 * One rule for choosing a profile: a `profile` UUI field naming an existing profile wins, then
 * the called number (user part of the Request-URI, compared with and without a leading '+'),
 * then the configured default.
 */
export function selectProfile(config: Config, calledUser: string, uuiProfile: string | undefined): SelectedProfile {
  if (uuiProfile !== undefined) {
    const p = config.profiles[uuiProfile];
    if (p) return { name: uuiProfile, profile: p };
  }
  const called = calledUser.replace(/^\+/, '');
  for (const [name, profile] of Object.entries(config.profiles)) {
    if (profile.calledNumbers.some((n) => n.replace(/^\+/, '') === called)) return { name, profile };
  }
  const name = config.defaultProfile;
  return { name, profile: config.profiles[name] as Profile };
}

/** Currency of the charge and its bounds (minor units) when the context picked an accepted one. */
interface ChargeCurrency {
  currency: string;
  minAmount: number;
  maxAmount: number;
  /** The call's entry mode (a conference leg reads back masked digits only). */
  entry?: EntryMode;
}

/**
 * The dialogue's view of a profile (the language may come from the call context, and the
 * currency too when the profile accepts it: see resolveContext).
 */
export function dialogueSettings(profile: Profile, language?: 'fr-FR' | 'en-US', charge?: ChargeCurrency): DialogueSettings {
  return {
    language: language ?? profile.language,
    currency: charge?.currency ?? profile.currency,
    amountSource: profile.amountSource,
    minAmount: charge?.minAmount ?? profile.minAmount,
    maxAmount: charge?.maxAmount ?? profile.maxAmount,
    allowedBrands: profile.allowedBrands,
    securityCode: profile.securityCode,
    maxDeclines: profile.maxDeclines,
    attempts: profile.attempts,
    readback: readbackFor(charge?.entry ?? profile.entry, profile.readback),
    timeouts: { firstDigitMs: profile.timeouts.firstDigitMs, interDigitMs: profile.timeouts.interDigitMs },
  };
}
