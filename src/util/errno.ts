// Permission errors, said for what they are. mxcert runs as root
// (docs/architecture.md, "Security model"): root's files are 0600 and its
// directories 0700, so the same config checked by another user fails on
// every file, and a message that called those files missing would send the
// operator looking for the wrong problem.

export function isPermissionError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EACCES' || code === 'EPERM';
}

/** `: mxcert expects to run as root` when it does not, else nothing (root can be denied too: NFS, LSMs). */
export function asRootHint(): string {
  const asRoot = typeof process.geteuid === 'function' && process.geteuid() === 0;
  return asRoot ? '' : ': mxcert expects to run as root';
}

/** `permission denied reading /etc/mxcert/tsig.key: mxcert expects to run as root` */
export function permissionDenied(action: string, file: string): string {
  return `permission denied ${action} ${file}${asRootHint()}`;
}
