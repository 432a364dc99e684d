/** Commands contributed by other parts: hosts, store init (storm and serve register from their own modules: src/cli/registry.ts). */
import type { Command } from 'commander';
import { redactUrl } from '../../store/open.js';
import { hostOfStream } from '../../store/types.js';
import { CliError } from '../io.js';
import type { App } from '../app.js';

export const registerExtras = (program: Command, app: App): void => {
  program
    .command('hosts')
    .description('the hosts (streams host-<name>) in the store')
    .action(
      app.action(async (ctx) => {
        const store = await ctx.store();
        const hosts: { host: string; entries: number }[] = [];
        for (const s of await store.streams()) {
          const h = hostOfStream(s);
          if (h !== null) hosts.push({ host: h, entries: await store.version(s) });
        }
        hosts.sort((a, b) => a.host.localeCompare(b.host));
        if (ctx.json) ctx.emit({ hosts });
        else if (hosts.length === 0) ctx.out('no hosts yet\n');
        else for (const h of hosts) ctx.out(`${h.host}\t${h.entries} entries\n`);
      }),
    );

  const store = program.command('store').description('store administration');
  store
    .command('init')
    .description('create the PostgreSQL schema now (it is also created on first use); file: and memory: need nothing')
    .action(
      app.action(async (ctx) => {
        if (!/^postgres(ql)?:/i.test(ctx.storeUrl)) {
          if (/^(file|memory):/i.test(ctx.storeUrl)) return ctx.out(`${redactUrl(ctx.storeUrl)} needs no initialisation\n`);
          throw new CliError(`store init: only postgres:// stores have a schema to create (got ${redactUrl(ctx.storeUrl)})`);
        }
        const { initPostgresSchema } = await import('../../store/postgres.js');
        await initPostgresSchema(ctx.storeUrl);
        if (ctx.json) ctx.emit({ ok: true, store: redactUrl(ctx.storeUrl) });
        else ctx.out(`schema ready in ${redactUrl(ctx.storeUrl)} (tables isogroup_events, isogroup_streams; see docs/stores.md)\n`);
      }),
    );
};
