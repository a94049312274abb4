// certbot hooks are shell command strings (certbot runs them with
// `shell=True`); mxcert runs a hook as an argv array without a shell
// (docs/architecture.md, "Security model"). A command that is only plain
// words means the same with or without a shell, so it becomes an argv array;
// anything a shell would interpret (quotes, $, ;, &&, |, redirections, globs,
// ~) is not guessed at: the admin wraps it in a script.

export type HookTranslation = { argv: string[]; note?: string } | { problem: string };

/** Characters that a POSIX shell gives no meaning inside a word (no quoting, expansion, globbing or operators). */
const PLAIN_WORD_RE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Reload hooks mxcert ships (hooks/): they check the MTA's config before reloading. */
const SHIPPED: { re: RegExp; hook: string }[] = [
  { re: /\bpostfix\b/, hook: 'postfix-reload' },
  { re: /\bdovecot\b/, hook: 'dovecot-reload' },
  { re: /\bexim4?\b/, hook: 'exim-reload' },
];

export function translateHook(command: string, resolveCommand?: (name: string) => string | undefined): HookTranslation {
  const words = command.trim().split(/[ \t]+/).filter((w) => w !== '');
  if (words.length === 0) return { problem: 'empty command' };
  // `VAR=value cmd` is an assignment to a shell, not a command name.
  if (!words.every((w) => PLAIN_WORD_RE.test(w)) || words[0]!.includes('=')) {
    return {
      problem:
        'certbot runs hooks through a shell and this one uses shell syntax; mxcert runs hooks without a shell: put the command in an executable script (#!/bin/sh) and list the script under hooks.deploy',
    };
  }
  let argv0 = words[0]!;
  let note: string | undefined;
  if (!argv0.startsWith('/')) {
    if (argv0.includes('/')) return { problem: `${argv0} is a relative path; give the hook's absolute path` };
    const found = resolveCommand?.(argv0);
    if (!found) return { problem: `${argv0} is not on this host's PATH; give the hook's absolute path` };
    note = `"${argv0}" found at ${found}`;
    argv0 = found;
  }
  const shipped = SHIPPED.find((s) => s.re.test(command));
  if (shipped && words.length > 1) {
    const tip = `mxcert ships hooks/${shipped.hook}, which checks the config before reloading`;
    note = note ? `${note}; ${tip}` : tip;
  }
  return { argv: [argv0, ...words.slice(1)], ...(note ? { note } : {}) };
}
