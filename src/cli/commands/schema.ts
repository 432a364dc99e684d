/** `isogroup schema`: the published JSON Schema of commands and events (docs/schema.md). */
import type { Command } from 'commander';
import { schemaDocument } from '../../../domain/index.js';
import type { App } from '../app.js';

export const registerSchema = (program: Command, app: App): void => {
  program
    .command('schema')
    .description('print the JSON Schema (2020-12) of every command (exec input) and every event (log entries); --json prints it on one line')
    .action(
      app.action(async (ctx) => {
        if (ctx.json) ctx.emit(schemaDocument());
        else ctx.out(`${JSON.stringify(schemaDocument(), null, 2)}\n`);
      }),
    );
};
