// One answer per key within one piece of work. A config for a thousand
// certificates names the same output directory, TSIG key file and hook a
// thousand times; checking each once per load gives the same answers (the
// load is one snapshot of the file system either way) without a thousand
// walks of the same directories.
export type Once = <T>(key: string, compute: () => Promise<T>) => Promise<T>;

/** A fresh memo: concurrent callers of one key share the one computation. */
export function onceEach(): Once {
  const done = new Map<string, Promise<unknown>>();
  return <T>(key: string, compute: () => Promise<T>): Promise<T> => {
    let p = done.get(key) as Promise<T> | undefined;
    if (!p) {
      p = compute();
      done.set(key, p);
    }
    return p;
  };
}
