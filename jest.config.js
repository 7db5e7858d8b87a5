// Unit tests sit next to their code; integration tests (services/NAME/test, test/) use the real servers.
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest'] },
  testMatch: ['**/?(*.)test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/', '/.data/'],
  testTimeout: 30_000,
  // Two cores: one worker per core; each test file owns its databases, prefixes and streams.
  maxWorkers: 2,
  // Gives the run an id that every test prefix carries, and deletes the run's JetStream streams at the end.
  globalSetup: '<rootDir>/test/support/test-streams-setup.js',
  globalTeardown: '<rootDir>/test/support/test-streams-teardown.js',
};
