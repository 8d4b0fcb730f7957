// Tags for the commands the proxy itself sends to the server. A per-process
// random prefix keeps them from colliding with the client tags that share the
// same connection (the relay tracks client tags by value).

import { randomBytes } from 'node:crypto';

const prefix = `X${randomBytes(3).toString('hex').toUpperCase()}`;
let counter = 0;

export function nextTag(): string {
  counter = (counter + 1) % 1_000_000_000;
  return `${prefix}.${counter}`;
}
