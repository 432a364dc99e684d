/** Jest runs the TypeScript sources directly through swc (no type check here: `tsc` does that). */
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/domain', '<rootDir>/projections', '<rootDir>/src', '<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  setupFiles: ['<rootDir>/test/setup/reducer.ts', '<rootDir>/test/setup/schema-library.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'es6' },
      },
    ],
  },
  testTimeout: 60000,
};
