// Packages scripts/bundle.mjs leaves out of dist/bundle, resolved from
// node_modules at run time. One list for the bundler and for
// scripts/build-deb.mjs, which ships exactly these (and what they depend on)
// in the Debian package.
//
// pino stays outside: its transports (pino-pretty on a TTY) start worker
// threads from files resolved relative to pino's own directory.
// etcd3 (fleet mode) stays outside: it loads its gRPC service definitions
// from proto/*.proto next to its own files at run time, and src/fleet loads
// it with a dynamic import only when the config has a fleet block, so
// neither its code nor gRPC's is read on a host without one.
export const EXTERNAL = ['pino', 'pino-pretty', 'etcd3'];
