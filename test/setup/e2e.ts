import { installPortGuard } from '../support/port-guard.js';

// End-to-end files bind fixed ports, all below the ephemeral range the unit project draws from.
installPortGuard('e2e');
