#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (done by `npm pack`/install scripts).
import { main } from '../dist/src/cli/main.js';
main(process.argv).then((code) => { process.exitCode = code; });
