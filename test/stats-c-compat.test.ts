// Our stats file read by the C original's pimpstat (Debian imapproxy 1.2.8~svn20171105):
// the first 72 bytes must be its struct IMAPCounter, byte for byte (SPEC §8.1).
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { scaled } from './helpers/wait.js';
import { C_FIELDS, C_LAYOUT_SIZE, StatsFileWriter, StatsRegistry, readStatsFile } from '@imapproxy/shared';

const C_PIMPSTAT = '/usr/sbin/pimpstat';
const haveCPimpstat = fs.existsSync(C_PIMPSTAT);
const cTest = haveCPimpstat ? test : test.skip;
if (!haveCPimpstat) {
  console.warn(`stats-c-compat: ${C_PIMPSTAT} not installed (apt-get install imapproxy); C comparison skipped`);
}

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'imapproxy-c-compat-'));
}

// The minimal config the C pimpstat is happy with. It only uses stat_filename (it parses the
// whole file with the daemon's parser, but nothing else is required [observed]).
function writeConf(dir: string, statFile: string): string {
  const conf = path.join(dir, 'imapproxy.conf');
  fs.writeFileSync(
    conf,
    [
      'server_port 143',
      'listen_port 1143',
      'cache_size 10',
      'proc_username nobody',
      'proc_groupname nogroup',
      `stat_filename ${statFile}`,
      `protocol_log_filename ${path.join(dir, 'p.log')}`,
      '',
    ].join('\n'),
  );
  return conf;
}

/** A registry whose every C counter holds a different value. */
function distinctRegistry(): StatsRegistry {
  const reg = new StatsRegistry(1700000000);
  const times = (n: number, f: () => void): void => {
    for (let i = 0; i < n; i++) f();
  };
  times(23, () => reg.clientOpened()); // accepted 23, peak 23
  times(6, () => reg.clientClosed()); // current 17
  times(12, () => reg.activeChanged(1)); // peak in use 12
  times(3, () => reg.activeChanged(-1)); // in use 9
  times(15, () => reg.cachedChanged(1)); // peak retained 15
  times(11, () => reg.cachedChanged(-1)); // retained 4
  times(5, () => reg.loginSucceeded('new')); // created 5
  times(14, () => reg.loginSucceeded('reused')); // reused 14, logins 19
  times(31, () => reg.selectCommand(true)); // hits 31
  times(8, () => reg.selectCommand(false)); // misses 8, selects 39
  reg.loginFailed();
  reg.evicted();
  return reg;
}

const EXPECTED_C_LINES = [
  ' 17 Current Client Connections',
  ' 23 Peak Client Connections',
  ' 9 In Use Connections',
  ' 12 Peak In Use Connections',
  ' 4 Retained Server Connections',
  ' 15 Peak Retained Server Connections',
  ' 23 Total Client Connections',
  ' 19 Total Client Logins',
  ' 14 Total Reused Connections',
  ' 5 Total Created Connections',
  ' 31 Cache Hits',
  ' 8 Cache Misses',
];

function runCPimpstat(conf: string): { stdout: string; status: number | null } {
  const r = spawnSync(C_PIMPSTAT, ['-c', '-f', conf], { encoding: 'utf8', timeout: scaled(10_000) });
  return { stdout: r.stdout, status: r.status };
}

cTest('C pimpstat -c reads every one of its twelve numbers from our file', (t) => {
  const dir = tempDir();
  const statFile = path.join(dir, 'pimpstats');
  const reg = distinctRegistry();
  const writer = new StatsFileWriter(reg, statFile);
  writer.flush();
  const { stdout, status } = runCPimpstat(writeConf(dir, statFile));
  writer.close();
  t.is(status, 0);
  t.deepEqual(stdout.split('\n'), [...EXPECTED_C_LINES, '']);
  // And our reader agrees with the same file.
  const ours = readStatsFile(statFile);
  t.like(ours, {
    currentClientConnections: 17,
    peakClientConnections: 23,
    inUseServerConnections: 9,
    peakInUseServerConnections: 12,
    retainedServerConnections: 4,
    peakRetainedServerConnections: 15,
    totalClientConnectionsAccepted: 23,
    totalClientLogins: 19,
    totalServerConnectionsReused: 14,
    totalServerConnectionsCreated: 5,
    selectCacheHits: 31,
    selectCacheMisses: 8,
    totalSelectCommands: 39,
    layoutVersion: 1,
  });
});

cTest('C pimpstat follows a live file: it sees each flush (mmap of the page cache)', (t) => {
  const dir = tempDir();
  const statFile = path.join(dir, 'pimpstats');
  const conf = writeConf(dir, statFile);
  const reg = new StatsRegistry();
  const writer = new StatsFileWriter(reg, statFile);
  t.is(runCPimpstat(conf).stdout.split('\n')[0], ' 0 Current Client Connections');
  reg.clientOpened();
  reg.clientOpened();
  writer.flush();
  t.is(runCPimpstat(conf).stdout.split('\n')[0], ' 2 Current Client Connections');
  reg.resetCounters();
  writer.flush();
  const lines = runCPimpstat(conf).stdout.split('\n');
  t.is(lines[1], ' 0 Peak Client Connections'); // the original's reset zeroes peaks
  t.is(lines[6], ' 0 Total Client Connections');
  writer.close();
});

cTest('C pimpstat prints wrapped u32 counters as negative %d, like ours must', (t) => {
  const dir = tempDir();
  const statFile = path.join(dir, 'pimpstats');
  const image = Buffer.alloc(C_LAYOUT_SIZE);
  image.writeUInt32LE(0xffffffff, C_FIELDS.retainedServerConnections.offset);
  image.writeUInt32LE(0x80000000, C_FIELDS.totalClientLogins.offset);
  fs.writeFileSync(statFile, image);
  const lines = runCPimpstat(writeConf(dir, statFile)).stdout.split('\n');
  t.is(lines[4], ' -1 Retained Server Connections');
  t.is(lines[7], ' -2147483648 Total Client Logins');
});

// The C compiler's own idea of struct IMAPCounter (declaration from include/imapproxy.h).
const haveGcc = spawnSync('gcc', ['--version']).status === 0;
(haveGcc ? test : test.skip)('gcc agrees with our C offsets and size', (t) => {
  const dir = tempDir();
  const src = path.join(dir, 'offsets.c');
  const names = [
    'StartTime',
    'CountTime',
    'CurrentClientConnections',
    'PeakClientConnections',
    'InUseServerConnections',
    'PeakInUseServerConnections',
    'RetainedServerConnections',
    'PeakRetainedServerConnections',
    'TotalClientConnectionsAccepted',
    'TotalClientLogins',
    'TotalServerConnectionsCreated',
    'TotalServerConnectionsReused',
    'TotalSelectCommands',
    'SelectCacheHits',
    'SelectCacheMisses',
  ];
  fs.writeFileSync(
    src,
    [
      '#include <stdio.h>',
      '#include <stddef.h>',
      '#include <time.h>',
      'struct IMAPCounter {',
      '  time_t StartTime;',
      '  time_t CountTime;',
      ...names.slice(2).map((n) => `  unsigned int ${n};`),
      '};',
      'int main(void) {',
      '  printf("size %zu\\n", sizeof(struct IMAPCounter));',
      ...names.map((n) => `  printf("${n} %zu\\n", offsetof(struct IMAPCounter, ${n}));`),
      '  return 0;',
      '}',
      '',
    ].join('\n'),
  );
  const exe = path.join(dir, 'offsets');
  execFileSync('gcc', ['-o', exe, src]);
  const out = execFileSync(exe, { encoding: 'utf8' });
  const expected = [
    `size ${C_LAYOUT_SIZE}`,
    ...names.map((n) => {
      const key = (n[0]!.toLowerCase() + n.slice(1)) as keyof typeof C_FIELDS;
      return `${n} ${C_FIELDS[key].offset}`;
    }),
    '',
  ];
  t.deepEqual(out.split('\n'), expected);
});
