/** The card brands the card rules know; a profile accepts a subset (config `allowedBrands`). */
export const BRANDS = [
  'visa',
  'mastercard',
  'amex',
  'discover',
  'diners',
  'jcb',
  'unionpay',
  'maestro',
  'mir',
] as const;
export type Brand = (typeof BRANDS)[number];
