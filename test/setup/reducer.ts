/** Jest setup: tests freeze every reducer state, so a test or handler mutating one fails loudly. */
import { configureReducer } from '../../domain/evolve/index.js';

configureReducer({ freeze: true });
