/** Split `host:port` / `[v6]:port` as written in the config. */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (!m) throw new Error(`not host:port: ${s}`);
  const port = Number(m[2]);
  if (!(port > 0 && port < 65536)) throw new Error(`port out of range in ${s}`);
  return { host: m[1]!, port };
}
