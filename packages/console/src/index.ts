export { Access } from './access.js';
export type { OverviewRow } from './api.js';
export { ConsoleConfigError } from './errors.js';
export type { ConsoleOptions } from './options.js';
export type { ConsoleServer } from './server.js';
export { startConsole } from './server.js';
