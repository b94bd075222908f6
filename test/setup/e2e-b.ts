import { installPortGuard } from '../support/port-guard.js';

// End-to-end lane B: fixed ports inside its own bands only, below the unit project's ephemeral range.
installPortGuard('e2e-b');
