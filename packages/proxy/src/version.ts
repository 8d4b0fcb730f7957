// The version every command reports; XPROXY_VERSION keeps the original's form.
export const VERSION = '0.1.0';
export const COMPAT_VERSION = '1.2.8';
