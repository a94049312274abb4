// Packages scripts/bundle.mjs leaves out of dist/bundle, resolved from
// node_modules at run time. One list for the bundler and for
// scripts/build-deb.mjs, which ships exactly these (and what they depend on)
// in the Debian package.
//
// pino stays outside: its transports (pino-pretty on a TTY) start worker
// threads from files resolved relative to pino's own directory.
export const EXTERNAL = ['pino', 'pino-pretty'];
