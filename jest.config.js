/**
 * Three projects: `unit` (pure cores, next to the code), `integration` (real servers, under test/) and
 * `deployments` (the long end-to-end deployment suites, `npm run test:deployments`): `npm test` runs the
 * first two and stays within CI's budget.
 */
const base = {
  extensionsToTreatAsEsm: ['.ts'],
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }] },
  moduleNameMapper: {
    '^#migrations$': '<rootDir>/migrations/index.ts',
    '^#([a-z-]+)$': '<rootDir>/libs/$1/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
};

/** Real agents deploying under load, crashing, rotating secrets, through the CLI: a minute each. */
const LONG_DEPLOYMENT_SUITES = [
  '/test/deployments/zero-downtime.test.ts',
  '/test/deployments/recovery.test.ts',
  '/test/deployments/secrets.test.ts',
  '/test/deployments/cli.test.ts',
  '/test/deployments/upload.test.ts',
];

/** @type {import('jest').Config} */
export default {
  // Integration tests start real servers; a slow machine must not fail them.
  testTimeout: 60_000,
  projects: [
    {
      ...base,
      displayName: 'unit',
      testMatch: ['<rootDir>/apps/**/*.spec.ts', '<rootDir>/libs/**/*.spec.ts'],
    },
    {
      ...base,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', ...LONG_DEPLOYMENT_SUITES],
    },
    {
      ...base,
      displayName: 'deployments',
      testMatch: LONG_DEPLOYMENT_SUITES.map((suite) => `<rootDir>${suite}`),
    },
  ],
};
