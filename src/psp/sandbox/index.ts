export { startSandbox, type Sandbox } from './server.js';

