// File errors in an operator's words: config problems name the file and
// what is wrong with it, not a bare errno code.

import { isPermissionError, permissionDenied } from '../util/errno.js';
/** Why `file` cannot be read, for a config problem: a permission error says so (src/util/errno.ts). */
export function readProblem(file: string, err: unknown): string {
  return isPermissionError(err) ? permissionDenied('reading', file) : `cannot read ${file}: ${errnoText(err)}`;
}

export function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a parent is not a directory';
    case 'ELOOP':
      return 'too many symbolic links';
    default:
      return code ?? (err instanceof Error ? err.message : String(err));
  }
}
