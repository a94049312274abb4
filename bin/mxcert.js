#!/usr/bin/env node
// Thin launcher: `npm run build` compiles src/ to dist/src (tsc) and bundles
// that into dist/bundle (scripts/bundle.mjs), which is what runs here.
import { main } from '../dist/bundle/main.js';
main(process.argv).then((code) => { process.exitCode = code; });
