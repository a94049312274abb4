// Total deadlines and body caps for API calls over HTTP (ACME, the PowerDNS
// API), and how their failures are worded. docs/architecture.md, "Security
// model": one timer from the start of a request to the end of its body (a
// server trickling bytes cannot hold a request open), bodies capped and the
// transfer cut off the moment Content-Length or the bytes received pass the
// cap, and errors that say which of these happened with the limit as set.

/** Where a request was when its deadline passed. */
export type DeadlinePhase = 'connect' | 'tls' | 'response' | 'body';

/** `30 s`, `1.5 s`, `200 ms`: a configured deadline, as it was set. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** `1 MiB`, `64 KiB`, `1000 bytes`. */
export function formatBytes(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1 << 10 && n % (1 << 10) === 0) return `${n / (1 << 10)} KiB`;
  return `${n} bytes`;
}

export function deadlineMessage(url: string, deadlineMs: number, phase: DeadlinePhase, bodyBytes: number): string {
  const within = formatMs(deadlineMs);
  switch (phase) {
    case 'connect':
      return `no connection to ${url} within ${within}`;
    case 'tls':
      return `no response from ${url} within ${within} (connected, but the TLS handshake was not answered)`;
    case 'response':
      return `no response from ${url} within ${within}`;
    case 'body':
      return `response from ${url} stalled: ${bodyBytes} bytes in ${within}`;
  }
}

export function bodyCapMessage(url: string, capBytes: number, declared?: number): string {
  return `response body from ${url} exceeded ${formatBytes(capBytes)}${declared !== undefined ? ` (Content-Length ${declared})` : ''}; the transfer was cut off`;
}

/** A Content-Length header as a number, or undefined when absent or not a plain decimal. */
export function declaredLength(value: string | string[] | null | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v.trim()) : undefined;
}
