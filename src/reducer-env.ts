/**
 * The reducer options a host program takes from its environment (domain/ reads none itself).
 * ISOGROUP_FREEZE=1 (or NODE_ENV=test, as under a test runner) deep-freezes every produced state,
 * so an accidental mutation of a published state fails loudly; it costs ~20% of replay.
 */
import { configureReducer } from '../domain/index.js';

export const configureReducerFromEnv = (env: Readonly<Record<string, string | undefined>>): void => {
  if (env.ISOGROUP_FREEZE === '1' || env.NODE_ENV === 'test') configureReducer({ freeze: true });
};
