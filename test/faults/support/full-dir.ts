// Making an output directory's writes fail for real, two ways:
//
// 1. `fillWithTinyTmpfs(dir)`: mount a small tmpfs over the directory (its
//    files copied in, same modes), then fill it with a filler file until
//    write(2) returns ENOSPC. Needs CAP_SYS_ADMIN (root outside a restricted
//    container); returns { refused } when mount(8) is refused.
// 2. `fsizeLimitBetween(...)`: RLIMIT_FSIZE on the mxcert process (prlimit,
//    util-linux), set between the largest file mxcert writes before deploying
//    and the size of the combined file: the kernel then fails the combined
//    file's write with EFBIG (Node ignores SIGXFSZ, so it is an error, not a
//    crash). Works in any container.
import { execFileSync } from 'node:child_process';
import { chmod, lstat, readdir, readFile, stat, writeFile, open } from 'node:fs/promises';
import path from 'node:path';
import { onExitSync, run } from '../../env/proc.js';

export interface TinyFs {
  /** Bytes the filler took (the space there was). */
  filled: number;
  unmount(): Promise<void>;
}

export async function fillWithTinyTmpfs(dir: string, sizeKiB = 64): Promise<TinyFs | { refused: string }> {
  const names = await readdir(dir);
  const saved: Array<{ name: string; content: Buffer; mode: number }> = [];
  for (const name of names) {
    const p = path.join(dir, name);
    const st = await lstat(p);
    if (!st.isFile()) throw new Error(`${p}: only regular files can be carried over to the tmpfs`);
    saved.push({ name, content: await readFile(p), mode: st.mode & 0o7777 });
  }
  const dirMode = (await stat(dir)).mode & 0o7777;
  const m = await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k,mode=${dirMode.toString(8)}`, 'tmpfs', dir], { allowFailure: true });
  if (m.code !== 0) return { refused: `mount -t tmpfs refused: ${(m.stderr || m.stdout).trim()}` };
  // A crashed test must not leave the mount behind (the sandbox dir could not be removed).
  const unregister = onExitSync(() => {
    try {
      execFileSync('umount', ['-l', dir]);
    } catch {
      // already unmounted
    }
  });
  for (const f of saved) {
    await writeFile(path.join(dir, f.name), f.content, { mode: f.mode });
    await chmod(path.join(dir, f.name), f.mode);
  }
  // Fill every remaining page.
  let filled = 0;
  const fh = await open(path.join(dir, 'zz-filler'), 'wx', 0o600);
  try {
    const chunk = Buffer.alloc(4096, 0x78);
    for (;;) {
      try {
        const { bytesWritten } = await fh.write(chunk);
        filled += bytesWritten;
        if (bytesWritten < chunk.length) break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw err;
      }
    }
  } finally {
    await fh.close();
  }
  return {
    filled,
    async unmount() {
      // A process still holding a file there (an smtpd mid-handshake) makes it busy: detach lazily then.
      const u = await run('umount', [dir], { allowFailure: true });
      if (u.code !== 0) await run('umount', ['-l', dir]);
      unregister();
    },
  };
}

/** prlimit argv prefix limiting file size to `bytes`. */
export function fsizeLimit(bytes: number): string[] {
  return ['prlimit', `--fsize=${bytes}`, '--'];
}

/** Sizes of every regular file under `root`, recursively. */
export async function fileSizes(root: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir(root, { withFileTypes: true })) {
    const p = path.join(root, e.name);
    if (e.isDirectory()) out.push(...(await fileSizes(p)));
    else if (e.isFile()) out.push((await stat(p)).size);
  }
  return out;
}
