export { Metrics } from './metrics.js';
export { startAdminServer, bearerMatches, type AdminServer, type AdminServerOptions, type BackendStatus } from './server.js';
