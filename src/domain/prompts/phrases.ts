import type { Brand } from '../brand.js';

/**
 * Dialogue phrases: every fixed sentence the payment dialogue (src/domain/dialogue) plays, per
 * language. Readback fragments (numbers, amounts, dates, letters) live in fragments.ts; phrase ids
 * must not use their prefixes (n- h- mult- key- l- sym- month- w- cur-).
 *
 * Phrases that end in "... is" / "ending in" are followed by readback fragments. The keys said here
 * are the dialogue's conventions: '*' = decimal point in amounts, '#' ends an entry, 1 = correct,
 * 2 = enter again, 3 = refuse the amount, 9 = cancel. en-US says "pound key" for '#'.
 */
type Texts = { 'en-US': string; 'fr-FR': string };

const BRAND_NAMES: Readonly<Record<Brand, string>> = {
  visa: 'Visa',
  mastercard: 'Mastercard',
  amex: 'American Express',
  discover: 'Discover',
  diners: 'Diners Club',
  jcb: 'JCB',
  unionpay: 'UnionPay',
  maestro: 'Maestro',
  mir: 'Mir',
};

function brandNotAccepted(): Record<string, Texts> {
  const out: Record<string, Texts> = {};
  for (const [brand, name] of Object.entries(BRAND_NAMES)) {
    out[`brand-not-accepted-${brand}`] = {
      'en-US': `Sorry, we do not accept ${name} cards.`,
      'fr-FR': `Désolé, nous n'acceptons pas les cartes ${name}.`,
    };
  }
  return out;
}

export const PHRASES: Record<string, Texts> = {
  welcome: {
    'en-US': 'Welcome to our secure payment service.',
    'fr-FR': 'Bienvenue sur notre service de paiement sécurisé.',
  },

  // Amount
  'you-are-about-to-pay': {
    'en-US': 'You are about to pay',
    'fr-FR': "Vous êtes sur le point de payer",
  },
  'amount-context-menu': {
    'en-US': 'To continue, press 1. If you do not agree with this amount, press 3. To cancel, press 9.',
    'fr-FR': "Pour continuer, tapez 1. Si vous n'êtes pas d'accord avec ce montant, tapez 3. Pour annuler, tapez 9.",
  },
  'balance-is': {
    'en-US': 'Your balance is',
    'fr-FR': 'Le solde de votre compte est de',
  },
  'choice-menu': {
    'en-US': 'To pay the full balance, press 1. To pay another amount, press 2. If you do not wish to pay, press 3. To cancel, press 9.',
    'fr-FR': 'Pour régler la totalité du solde, tapez 1. Pour payer un autre montant, tapez 2. Si vous ne souhaitez pas payer, tapez 3. Pour annuler, tapez 9.',
  },
  'enter-amount': {
    'en-US': 'Please enter the amount you wish to pay, using the star key for the decimal point, then press the pound key.',
    'fr-FR': 'Veuillez saisir le montant que vous souhaitez payer, en utilisant la touche étoile pour la virgule, puis tapez dièse.',
  },
  'amount-invalid': {
    'en-US': 'That amount is not valid.',
    'fr-FR': "Ce montant n'est pas valide.",
  },
  'amount-minimum-is': {
    'en-US': 'The minimum amount is',
    'fr-FR': 'Le montant minimum est de',
  },
  'amount-maximum-is': {
    'en-US': 'The maximum amount is',
    'fr-FR': 'Le montant maximum est de',
  },

  // Readback and confirmation
  'you-entered': {
    'en-US': 'You entered',
    'fr-FR': 'Vous avez saisi',
  },
  'card-ending-in': {
    'en-US': 'Card number ending in',
    'fr-FR': 'Numéro de carte se terminant par',
  },
  'confirm-menu': {
    'en-US': 'If this is correct, press 1. To enter it again, press 2. To cancel, press 9.',
    'fr-FR': "Si c'est exact, tapez 1. Pour recommencer la saisie, tapez 2. Pour annuler, tapez 9.",
  },

  // Card number
  'enter-card-number': {
    'en-US': 'Please enter your card number, followed by the pound key.',
    'fr-FR': 'Veuillez saisir votre numéro de carte, suivi de la touche dièse.',
  },
  'card-invalid': {
    'en-US': 'That card number is not valid.',
    'fr-FR': "Ce numéro de carte n'est pas valide.",
  },
  'card-not-recognised': {
    'en-US': 'That card is not recognized.',
    'fr-FR': "Cette carte n'est pas reconnue.",
  },
  ...brandNotAccepted(),

  // Expiry
  'enter-expiry': {
    'en-US': 'Please enter the expiration date of your card: four digits, two for the month, then two for the year.',
    'fr-FR': "Veuillez saisir la date d'expiration de votre carte : quatre chiffres, deux pour le mois, puis deux pour l'année.",
  },
  'expiry-invalid': {
    'en-US': 'That date is not valid.',
    'fr-FR': "Cette date n'est pas valide.",
  },
  'card-expired': {
    'en-US': 'That card has expired.',
    'fr-FR': 'Cette carte est expirée.',
  },

  // Security code
  'enter-security-code-3': {
    'en-US': 'Please enter the three-digit security code printed on the back of your card.',
    'fr-FR': 'Veuillez saisir le cryptogramme à trois chiffres inscrit au dos de votre carte.',
  },
  'enter-security-code-4': {
    'en-US': 'Please enter the four-digit security code printed on the front of your card.',
    'fr-FR': 'Veuillez saisir le code de sécurité à quatre chiffres inscrit au recto de votre carte.',
  },
  'security-code-invalid': {
    'en-US': 'That security code is not valid.',
    'fr-FR': "Ce code de sécurité n'est pas valide.",
  },

  // Charge and result
  'processing-payment': {
    'en-US': 'Please wait while we process your payment.',
    'fr-FR': 'Veuillez patienter pendant le traitement de votre paiement.',
  },
  'payment-approved': {
    'en-US': 'Your payment has been approved.',
    'fr-FR': 'Votre paiement a été accepté.',
  },
  'amount-paid': {
    'en-US': 'Amount paid:',
    'fr-FR': 'Montant payé :',
  },
  'your-reference-is': {
    'en-US': 'Your reference is',
    'fr-FR': 'Votre référence est',
  },
  'thank-you': {
    'en-US': 'Thank you.',
    'fr-FR': 'Merci.',
  },
  // Played by the call layer (not the dialogue) when the hand-back REFER fails, before the BYE.
  'transfer-failed': {
    'en-US': 'We could not transfer your call. Please call us again. Goodbye.',
    'fr-FR': "Nous n'avons pas pu transférer votre appel. Merci de nous rappeler. Au revoir.",
  },
  'declined-insufficient-funds': {
    'en-US': 'Your payment was declined: insufficient funds.',
    'fr-FR': 'Votre paiement a été refusé : provision insuffisante.',
  },
  'declined-generic': {
    'en-US': 'Your payment was declined by your bank.',
    'fr-FR': 'Votre paiement a été refusé par votre banque.',
  },
  'declined-incorrect-cvc': {
    'en-US': 'Your payment was declined: the security code is incorrect.',
    'fr-FR': 'Votre paiement a été refusé : le code de sécurité est incorrect.',
  },
  'declined-expired-card': {
    'en-US': 'Your payment was declined: your bank reports that this card has expired. Please check the expiration date.',
    'fr-FR': "Votre paiement a été refusé : votre banque indique que cette carte est expirée. Veuillez vérifier la date d'expiration.",
  },
  'declined-incorrect-number': {
    'en-US': 'Your payment was declined: the card number is incorrect.',
    'fr-FR': 'Votre paiement a été refusé : le numéro de carte est incorrect.',
  },
  'payment-not-processed': {
    'en-US': 'Sorry, your payment could not be processed.',
    'fr-FR': "Désolé, votre paiement n'a pas pu être traité.",
  },
  'other-card-menu': {
    'en-US': 'To try another card, press 1. To end the payment, press 2.',
    'fr-FR': 'Pour essayer une autre carte, tapez 1. Pour mettre fin au paiement, tapez 2.',
  },
  'too-many-declines': {
    'en-US': 'We are unable to take your payment after several attempts.',
    'fr-FR': "Nous ne pouvons pas prendre votre paiement après plusieurs tentatives.",
  },
  'payment-not-completed': {
    'en-US': 'Your payment has not been completed.',
    'fr-FR': "Votre paiement n'a pas été effectué.",
  },
  // The PSP may have charged the card but did not confirm it (outcome `unconfirmed`).
  'payment-unconfirmed': {
    'en-US': 'Sorry, we could not confirm your payment. Please do not pay again: we will check it and your account will be updated.',
    'fr-FR': "Désolé, nous n'avons pas pu confirmer votre paiement. Merci de ne pas payer à nouveau : nous allons le vérifier et votre compte sera mis à jour.",
  },

  // Ends and errors
  'too-many-attempts': {
    'en-US': 'Sorry, there have been too many unsuccessful attempts.',
    'fr-FR': 'Désolé, le nombre maximal de tentatives a été atteint.',
  },
  'payment-cancelled': {
    'en-US': 'Your payment has been canceled. You have not been charged.',
    'fr-FR': "Votre paiement a été annulé. Aucun montant n'a été débité.",
  },
  'no-input': {
    'en-US': 'Sorry, I did not hear anything.',
    'fr-FR': "Désolé, je n'ai rien entendu.",
  },
  'invalid-choice': {
    'en-US': 'That choice is not valid.',
    'fr-FR': "Ce choix n'est pas valide.",
  },
};
