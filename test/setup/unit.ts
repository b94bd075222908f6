import { installPortGuard } from '../support/port-guard.js';

// Unit files run in parallel beside the end-to-end project: ephemeral ports only.
installPortGuard('unit');
