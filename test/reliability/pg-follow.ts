/**
 * The subscriber child of the PostgreSQL drop test (pgdrop.test.ts), run from dist/ as
 *
 *   node dist/test/reliability/pg-follow.js URL
 *
 * Subscribes to every stream from the beginning and prints one line per event as delivered:
 * `{"s":stream,"p":pos,"c":checkpoint,"i":eventId,"k":command}`. Its store's warnings (one line per
 * reconnect) go to stderr. Runs until killed.
 */
import { openPostgresStore } from '../../src/store/postgres.js';

const [url] = process.argv.slice(2);
if (!url) {
  process.stderr.write('usage: pg-follow.js URL\n');
  process.exit(2);
}
const store = await openPostgresStore(url, { warn: (m) => void process.stderr.write(`isogroup: warning: ${m}\n`) });
store.subscribe({
  onEvent: (e) => void process.stdout.write(`${JSON.stringify({ s: e.stream, p: e.pos, c: e.checkpoint, i: e.id, k: e.meta.command ?? null })}\n`),
  onError: (error) => {
    process.stderr.write(`subscription failed: ${error.message}\n`);
    process.exit(1);
  },
});
process.stdout.write('{"ready":true}\n');
