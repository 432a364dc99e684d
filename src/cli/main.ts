#!/usr/bin/env node
import { configureReducerFromEnv } from '../reducer-env.js';
import { nodeIo } from './io.js';
import { run } from './program.js';

configureReducerFromEnv(process.env);
process.exitCode = await run(process.argv.slice(2), nodeIo());
