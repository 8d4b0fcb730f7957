export * from './scanner.js';
export * from './command-assembler.js';
export * from './arguments.js';
export * from './strings.js';
export * from './capabilities.js';
export * from './response.js';
export * from './command-traits.js';
export * from './client-command.js';
