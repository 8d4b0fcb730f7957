export * from './errors.js';
export * from './imap/index.js';
export * from './stats/index.js';
export * from './config/index.js';
export * from './control/index.js';
