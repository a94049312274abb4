// Mutation testing of the pure decision modules: `npm run mutate` (StrykerJS 9,
// the last line that runs on Node 20). Each mutant is tested by the node:test
// files that cover it (per-file coverage through the tap runner), run with tsx.
// CPU-heavy: one process at a time; not part of CI. Single module:
// `npm run mutate -- --mutate src/dane/tlsa.ts`.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'tap',
  plugins: ['@stryker-mutator/tap-runner'],
  tap: {
    testFiles: [
      'test/unit/renewal-time.test.ts',
      'test/unit/plan.test.ts',
      'test/unit/chain-check.test.ts',
      'test/unit/usage.test.ts',
      'test/unit/tlsa.test.ts',
      'test/unit/holder.test.ts',
      'test/unit/dane-wake.test.ts',
      'test/unit/acme-jws.test.ts',
      'test/unit/atomic-write.test.ts',
      'test/unit/renew-decisions.test.ts',
      'test/unit/dane-decide.test.ts',
      'test/unit/rollover.test.ts',
      'test/unit/dane-retire.test.ts',
      // The property test of the rollover invariant (fast-check, random
      // cases: a mutant it kills on one run it may miss on another).
      'test/unit/dane-model.test.ts',
    ],
    // The tap runner adds `-r <its coverage hook>` and the test file.
    nodeArgs: ['--import', 'tsx'],
    // A killed mutant's test process ends at its first failing test.
    forceBail: true,
  },
  mutate: [
    'src/schedule/renewal-time.ts',
    'src/schedule/plan.ts',
    'src/schedule/staged.ts',
    'src/schedule/config-fingerprint.ts',
    'src/validate/*.ts',
    'src/dane/tlsa.ts',
    // The pure lock judgement and the /proc and argv parsing; the effects
    // (readStartTime, processFacts, selfRecord, readCmdline) are exercised by
    // lock.test.ts with real processes, too slow to run per mutant.
    'src/store/holder.ts:58-93',
    'src/store/holder.ts:141-154',
    'src/daemon/wake.ts',
    // The DANE rollover decision and its phase names; the retirement's pure
    // decision (decideRetire and what it reads); the executors (execute.ts,
    // runRetire) carry out I/O and are covered by the DANE integration tests.
    'src/dane/decide.ts',
    'src/dane/phases.ts',
    'src/dane/retire.ts:52-141',
    'src/dane/retire.ts:243-257',
  ],
  coverageAnalysis: 'perTest',
  concurrency: 1,
  timeoutMS: 30_000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 95, low: 90, break: null },
  tempDirName: '.stryker-tmp',
  ignorePatterns: ['dist', 'reports', 'sandbox', 'bench/results', 'packaging/build'],
  cleanTempDir: true,
};
