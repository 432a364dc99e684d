/** The reducer, one module per concept; table.ts says which path and handler applies each event type. */
export { evolve, evolveAll, initialState } from './reduce.js';
export type { EvolveEvent } from './common.js';
export { configureReducer, type ReducerConfig } from './batch.js';
export { REDUCER_TABLE, type Step } from './table.js';
export { openSession, type Session } from './session.js';
