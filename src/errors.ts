// Typed errors. Every error carries a stable `code` (for JSON output, metrics
// labels and tests) and keeps its cause, so a log line can show the whole chain.

export class MxcertError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export interface ConfigProblem {
  /** YAML path, e.g. `certificates[0].challenge.dns.tsig.secretFile` */
  path: string;
  message: string;
}

export class ConfigError extends MxcertError {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[], options?: { cause?: unknown }) {
    super('config', problems.map((p) => `${p.path || '(root)'}: ${p.message}`).join('\n'), options);
    this.problems = problems;
  }
}

/** RFC 8555 §6.7 problem document, as the CA sent it. */
export interface AcmeProblem {
  type: string;
  detail?: string;
  status?: number;
  subproblems?: Array<{ type: string; detail?: string; identifier?: { type: string; value: string } }>;
}

export class AcmeProblemError extends MxcertError {
  readonly problem: AcmeProblem | undefined;
  readonly status: number | undefined;
  /** Seconds, from the Retry-After header of the failing response, if any. */
  readonly retryAfter: number | undefined;
  constructor(
    message: string,
    info: { problem?: AcmeProblem; status?: number; retryAfter?: number },
    options?: { cause?: unknown },
  ) {
    super('acme', message, options);
    this.problem = info.problem;
    this.status = info.status ?? info.problem?.status;
    this.retryAfter = info.retryAfter;
  }
  /** Short type, e.g. `rateLimited` for `urn:ietf:params:acme:error:rateLimited`. */
  get problemType(): string | undefined {
    return this.problem?.type?.replace('urn:ietf:params:acme:error:', '');
  }
}

/** A chain check of docs/architecture.md, "Files on disk" failed; `check` names which one. */
export class ValidationError extends MxcertError {
  readonly check: 'key-match' | 'names' | 'chain-order' | 'signature' | 'issuer' | 'validity' | 'parse';
  constructor(check: ValidationError['check'], message: string, options?: { cause?: unknown }) {
    super('validation', `${check}: ${message}`, options);
    this.check = check;
  }
}

export class ChallengeError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('challenge', message, options);
  }
}

export class DnsError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('dns', message, options);
  }
}

export class DeployError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('deploy', message, options);
  }
}

/**
 * A hook failed. The message is complete and bounded by construction: the
 * hook's path, how it ended and a short tail of its output (src/hooks/
 * output-tail.ts), never its arguments. The cause is execa's result, whose
 * own text holds the whole command line; describeError does not show it.
 */
export class HookError extends MxcertError {
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  readonly timedOut: boolean;
  constructor(message: string, info: { exitCode?: number; signal?: string; timedOut?: boolean }, options?: { cause?: unknown }) {
    super('hook', message, options);
    this.exitCode = info.exitCode;
    this.signal = info.signal;
    this.timedOut = info.timedOut ?? false;
  }
}

export class VerifyError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('verify', message, options);
  }
}

/** The stateDir or a file in it (state.json, a version's meta.json, the DANE journal) is unusable. */
export class StateError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('state', message, options);
  }
}

/** A certificate signing request cannot be made (RFC 2986): the key or the names do not fit. */
export class CsrError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('csr', message, options);
  }
}

/** The metrics endpoint cannot be served as configured. */
export class MetricsError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('metrics', message, options);
  }
}

/** ACME Renewal Information (RFC 9773) cannot be used: no CertID can be formed, or the CA's answer is unusable. */
export class AriError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ari', message, options);
  }
}

/** A local ACME input is unusable (the account key, a certificate to revoke): not a problem the CA reported. */
export class AcmeInputError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('acme', message, options);
  }
}

/** `mxcert dane retire` will not remove mxcert's TLSA records: what would be left would break delivery. */
export class DaneRetireRefusedError extends MxcertError {
  constructor(message: string) {
    super('dane-retire', message);
  }
}

export class LockHeldError extends MxcertError {
  readonly holder: string;
  constructor(holder: string) {
    super('lock', `another mxcert holds the state lock (${holder})`);
    this.holder = holder;
  }
}

/**
 * An execa error or result: its text is the whole command line (arguments
 * may be secrets) and maybe all of its output, so it is never rendered.
 */
function isSubprocessOutcome(v: unknown): boolean {
  return typeof v === 'object' && v !== null && 'escapedCommand' in v;
}

/** Render an error and its causes on one line, for logs and `MXCERT_ERROR`. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 5; depth++) {
    if (isSubprocessOutcome(cur)) {
      // Only when nothing wraps it: say what failed, not its command line.
      if (parts.length === 0) parts.push(subprocessSummary(cur as { exitCode?: number; signal?: string }));
      break;
    }
    if (cur instanceof Error) {
      // Wrappers often embed their cause's text already; say it once.
      if (!parts.some((p) => p.includes(cur instanceof Error ? cur.message : ''))) parts.push(cur.message);
      // A HookError's message is whole (see HookError); its cause is execa's.
      if (cur instanceof HookError) break;
      cur = (cur as { cause?: unknown }).cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.join(': caused by: ');
}

function subprocessSummary(r: { exitCode?: number; signal?: string }): string {
  if (r.exitCode !== undefined) return `a command exited with code ${r.exitCode}`;
  return r.signal ? `a command was killed by ${r.signal}` : 'a command failed';
}
