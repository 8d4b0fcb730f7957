export * from './scanner.js';
export * from './command-assembler.js';
export * from './arguments.js';
export * from './strings.js';
export * from './capabilities.js';
export * from './response.js';
