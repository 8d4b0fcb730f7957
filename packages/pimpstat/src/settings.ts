// What pimpstat takes from imapproxy.conf: where the stats file is, and two facts for display.
import { loadConfig } from '@imapproxy/shared';

export interface PimpstatSettings {
  configFile: string;
  statFile: string;
  /** Where stat_filename came from, for error messages: `<file>:<line>` or a default note. */
  statFileOrigin: string;
  /** The original shows hits/misses only when the config *pimpstat read* enables the cache. */
  selectCacheEnabled: boolean;
  cacheSize: number;
  /** The daemon's control socket: the `r` key resets the counters through it. */
  controlSocket: string;
}

/** Throws the loader's ConfigError (codes IMAPPROXY_ERR_CONFIG, IMAPPROXY_ERR_CONFIG_IO). */
export function loadSettings(configFile: string): PimpstatSettings {
  const loaded = loadConfig(configFile);
  const line = loaded.sources.get('stat_filename');
  return {
    configFile,
    statFile: loaded.config.stat_filename,
    statFileOrigin:
      line === undefined
        ? `the default stat_filename; ${configFile} has no stat_filename line`
        : `stat_filename at ${configFile}:${line}`,
    selectCacheEnabled: loaded.config.enable_select_cache,
    cacheSize: loaded.config.cache_size,
    controlSocket: loaded.config.control_socket,
  };
}
