/**
 * Dialogue phrases (owned by the dialogue helper; this is a placeholder set until it lands).
 * Ids must not use the readback fragment prefixes (see fragments.ts).
 */
export const PHRASES: Record<string, { 'en-US': string; 'fr-FR': string }> = {
  welcome: {
    'en-US': 'Welcome to our secure payment service.',
    'fr-FR': 'Bienvenue sur notre service de paiement sécurisé.',
  },
  'enter-card-number': {
    'en-US': 'Please enter your card number, followed by the pound key.',
    'fr-FR': 'Veuillez saisir votre numéro de carte, suivi de la touche dièse.',
  },
  'payment-approved': {
    'en-US': 'Your payment has been approved.',
    'fr-FR': 'Votre paiement a été accepté.',
  },
};
