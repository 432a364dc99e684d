/** Commands contributed by other parts: hosts, store init, ingest/verify, storm, serve. */
import type { Command } from 'commander';
import { hostOfStream } from '../../store/types.js';
import type { App } from '../program.js';

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
};
