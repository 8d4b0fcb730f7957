// The control socket's protocol, shared by the daemon, imapproxyctl and pimpstat.
export * from './control-protocol.js';
export * from './control-client.js';
