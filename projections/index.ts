export * from './sentences.js';
export * from './groups.js';
