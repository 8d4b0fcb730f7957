import test from 'ava';
import { decodeStats, encodeStats } from './codec.js';
import { StatsRegistry } from './registry.js';

test('a fresh registry: StartTime = CountTime = now, all counters 0, header set', (t) => {
  const reg = new StatsRegistry(1700000000);
  const s = reg.snapshot();
  t.is(s.startTime, 1700000000);
  t.is(s.countTime, 1700000000);
  t.is(s.currentClientConnections, 0);
  t.is(s.totalSelectCommands, 0);
  t.is(s.extension?.writerPid, process.pid);
  t.is(s.extension?.generation, 0);
  const buf = Buffer.from(reg.buffer);
  t.is(buf.readUInt32LE(72), 0x494d5058);
  t.is(buf.readUInt32LE(76), 1);
  t.is(buf.readUInt32LE(84), 512);
  t.is(reg.buffer.byteLength, 512);
});

test('the SharedArrayBuffer is the file image (on a little-endian host)', (t) => {
  const reg = new StatsRegistry(1700000000);
  reg.clientOpened();
  reg.loginSucceeded('new');
  reg.evicted();
  // encodeStats(snapshot) and the raw buffer agree byte for byte.
  t.deepEqual([...encodeStats(reg.snapshot())], [...Buffer.from(reg.buffer)]);
});

test('client connections: current, peak, accepted; close never goes below 0', (t) => {
  const reg = new StatsRegistry(1);
  reg.clientOpened();
  reg.clientOpened();
  reg.clientOpened();
  reg.clientClosed();
  reg.clientClosed();
  reg.clientOpened();
  let s = reg.snapshot();
  t.is(s.currentClientConnections, 2);
  t.is(s.peakClientConnections, 3);
  t.is(s.totalClientConnectionsAccepted, 4);
  t.is(s.extension?.clientConnectionsAccepted, 4);
  reg.clientClosed();
  reg.clientClosed();
  reg.clientClosed(); // one too many: the C original would wrap to 4294967295
  s = reg.snapshot();
  t.is(s.currentClientConnections, 0);
  t.is(s.peakClientConnections, 3);
  t.is(s.extension?.gaugeUnderflows, 1);
});

test('logins: totals, created vs reused, failures', (t) => {
  const reg = new StatsRegistry(1);
  reg.loginSucceeded('new');
  reg.loginSucceeded('reused');
  reg.loginSucceeded('reused');
  reg.loginFailed();
  reg.serverConnectFailed();
  reg.serverConnectFailed();
  const s = reg.snapshot();
  t.is(s.totalClientLogins, 3);
  t.is(s.totalServerConnectionsCreated, 1);
  t.is(s.totalServerConnectionsReused, 2);
  t.like(s.extension, {
    clientLogins: 3,
    serverConnectionsCreated: 1,
    serverConnectionsReused: 2,
    loginFailures: 1,
    serverConnectFailures: 2,
  });
});

test('active and cached gauges with peaks; underflow is counted, not wrapped', (t) => {
  const reg = new StatsRegistry(1);
  reg.activeChanged(1);
  reg.activeChanged(1);
  reg.activeChanged(-1);
  reg.cachedChanged(1);
  reg.cachedChanged(1);
  reg.cachedChanged(1);
  reg.cachedChanged(-1);
  reg.cachedChanged(-1);
  reg.cachedChanged(-1);
  reg.cachedChanged(-1);
  reg.activeChanged(-1);
  reg.activeChanged(-1);
  const s = reg.snapshot();
  t.is(s.inUseServerConnections, 0);
  t.is(s.peakInUseServerConnections, 2);
  t.is(s.retainedServerConnections, 0);
  t.is(s.peakRetainedServerConnections, 3);
  t.is(s.extension?.gaugeUnderflows, 2);
});

test('pool events and select cache', (t) => {
  const reg = new StatsRegistry(1);
  reg.evicted();
  reg.expired();
  reg.expired();
  reg.invalidated();
  reg.invalidated();
  reg.invalidated();
  reg.resync(true);
  reg.resync(false);
  reg.resync(false);
  reg.selectCommand(true);
  reg.selectCommand(false);
  reg.selectCommand(false);
  const s = reg.snapshot();
  t.is(s.totalSelectCommands, 3);
  t.is(s.selectCacheHits, 1);
  t.is(s.selectCacheMisses, 2);
  t.like(s.extension, {
    evictions: 1,
    expirations: 2,
    invalidations: 3,
    resyncsOk: 1,
    resyncsFailed: 2,
    selectCommands: 3,
    selectCacheHits: 1,
    selectCacheMisses: 2,
  });
});

test('resetCounters: exactly the XPROXY_RESETCOUNTERS fields (SPEC §6)', (t) => {
  const reg = new StatsRegistry(1000);
  for (let i = 0; i < 3; i++) reg.clientOpened();
  reg.clientClosed();
  reg.activeChanged(1);
  reg.activeChanged(1);
  reg.activeChanged(-1);
  reg.cachedChanged(1);
  reg.cachedChanged(1);
  reg.cachedChanged(-1);
  reg.loginSucceeded('new');
  reg.loginSucceeded('reused');
  reg.selectCommand(true);
  reg.selectCommand(false);
  reg.loginFailed();
  reg.evicted();
  reg.clientClosed();
  reg.clientClosed();
  reg.clientClosed(); // one underflow
  reg.resetCounters(2000);
  const s = reg.snapshot();
  t.deepEqual(
    { ...s, extension: null },
    {
      startTime: 1000, // untouched
      countTime: 2000,
      currentClientConnections: 0, // gauges untouched (it was 0 already)
      peakClientConnections: 0, // zeroed
      inUseServerConnections: 1, // untouched
      peakInUseServerConnections: 0, // zeroed, below current: as the original
      retainedServerConnections: 1,
      peakRetainedServerConnections: 0,
      totalClientConnectionsAccepted: 0,
      totalClientLogins: 0,
      totalServerConnectionsCreated: 0,
      totalServerConnectionsReused: 0,
      totalSelectCommands: 2, // select counters untouched
      selectCacheHits: 1,
      selectCacheMisses: 1,
      extension: null,
    },
  );
  t.like(s.extension, {
    clientConnectionsAccepted: 0,
    clientLogins: 0,
    serverConnectionsCreated: 0,
    serverConnectionsReused: 0,
    selectCommands: 2,
    selectCacheHits: 1,
    selectCacheMisses: 1,
    loginFailures: 1, // extension-only counters: since start
    evictions: 1,
    gaugeUnderflows: 1,
  });
  // Peaks climb again from the current gauge on the next rise.
  reg.activeChanged(1);
  t.is(reg.snapshot().peakInUseServerConnections, 2);
});

test('a snapshot decodes back from the raw buffer', (t) => {
  const reg = new StatsRegistry(1700000000);
  reg.clientOpened();
  reg.selectCommand(true);
  const fromBuffer = decodeStats(Buffer.from(reg.buffer));
  t.deepEqual({ ...fromBuffer, layoutVersion: undefined }, { ...reg.snapshot(), layoutVersion: undefined });
});

test('sinceStart: the reset totals as if resetCounters() never ran (Prometheus counters)', (t) => {
  const reg = new StatsRegistry(1000);
  reg.clientOpened();
  reg.loginSucceeded('new');
  reg.loginSucceeded('reused');
  reg.resetCounters(2000);
  reg.clientOpened();
  reg.loginSucceeded('reused');
  reg.resetCounters(3000);
  t.is(reg.snapshot().extension?.clientLogins, 0);
  t.is(reg.sinceStart('clientConnectionsAccepted'), 2);
  t.is(reg.sinceStart('clientLogins'), 3);
  t.is(reg.sinceStart('serverConnectionsCreated'), 1);
  t.is(reg.sinceStart('serverConnectionsReused'), 2);
});
