#!/usr/bin/env node
// Echoes a TAP stream (ava --tap) and ends it with exactly one summary line:
//   "N passed, N failed" (+ ", N skipped" when any were skipped or todo)
// Exit status: non-zero if a test failed, no test ran, or the producer reported a
// non-zero exit status through a final "# ava-exit-code N" line (scripts/test.sh
// appends it; the line itself is not echoed).
//
// Only top-level "ok" / "not ok" lines count: YAML diagnostics are indented.
import { createInterface } from 'node:readline';

const TEST_POINT = /^(not ok|ok)\b(.*)$/;
const DIRECTIVE = /#\s*(skip|todo)\b/i;
const EXIT_MARKER = /^# ava-exit-code (\d+)\s*$/;

let passed = 0;
let failed = 0;
let skipped = 0;
let producerExit = 0;
let bailedOut = false;

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  const marker = EXIT_MARKER.exec(line);
  if (marker) {
    producerExit = Number(marker[1]);
    continue;
  }
  process.stdout.write(`${line}\n`);
  if (line.startsWith('Bail out!')) bailedOut = true;
  const m = TEST_POINT.exec(line);
  if (!m) continue;
  if (DIRECTIVE.test(m[2])) skipped++;
  else if (m[1] === 'ok') passed++;
  else failed++;
}

const reasons = [];
if (producerExit !== 0) reasons.push(`ava exited with status ${producerExit}`);
if (bailedOut) reasons.push('TAP stream bailed out');
if (passed + failed === 0) reasons.push('no tests ran');
if (reasons.length > 0 && failed === 0) process.stderr.write(`tap-summary: ${reasons.join('; ')}\n`);

process.stdout.write(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`);
process.exitCode = failed > 0 || reasons.length > 0 ? 1 : 0;
