export { startSandbox, type Sandbox, type SandboxOptions } from './server.js';
export type { Fault, FaultRule, SandboxFace } from './faults.js';
export type { LedgerEntry, RequestRecord } from './types.js';
export { APPROVED_TEST_CARDS, DECLINE_TEST_CARDS, ADYEN_HOLDER_NAME_TRIGGERS } from './cards.js';
