// The config loader's public surface, re-exported by the package index.
export * from './config-error.js';
export * from './load.js';
export * from './render.js';
export * from './schema.js';
export * from './lists.js';
export { formatValue, typeLabel } from './value-types.js';
