// The YAML path notation every config problem uses
// (`certificates[0].output.combined`). Apart from yaml.ts, which loads the
// YAML parser: the file-system checks name paths too, and `mxcert status`
// runs them without parsing YAML when its cached validation holds
// (src/config/validated-cache.ts).

export type PathSegment = string | number;

/** `certificates[0].challenge.dns.tsig.secretFile` */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const seg of segments) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** The inverse of formatPath. */
export function parsePath(p: string): PathSegment[] {
  const out: PathSegment[] = [];
  for (const m of p.matchAll(/\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|([^.[\]]+)/g)) {
    if (m[1] !== undefined) out.push(Number(m[1]));
    else if (m[2] !== undefined) out.push(JSON.parse(m[2]) as string);
    else if (m[3] !== undefined) out.push(m[3]);
  }
  return out;
}

/** The value at `segments` in plain data, or undefined. */
export function valueAt(data: unknown, segments: readonly PathSegment[]): unknown {
  let cur = data;
  for (const seg of segments) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PathSegment, unknown>)[seg];
  }
  return cur;
}
