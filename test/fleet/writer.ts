/**
 * A writer process for the concurrent-writers test: runs `count` commands against one host of a
 * store through the manager (group commits of 25 commands, so the two writers interleave and conflict),
 * prints one JSON line per acknowledged result, then the position and fingerprint of the state it
 * believes in.
 *
 *   node dist/test/fleet/writer.js <store-url> <name> <count>
 */
import { hex } from '../../domain/index.js';
import { stateDigest } from '../helpers.js';
import { createManager } from '../../src/manager.js';
import { openStore } from '../../src/store/open.js';

const main = async (): Promise<void> => {
  const [url, name, countText] = process.argv.slice(2);
  const count = Number(countText);
  const store = await openStore(url!);
  const m = createManager({ store, retries: 50 });
  await m.load();
  const commands: Record<string, unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const page = BigInt(i % 512);
    // Mostly this writer's own domain; every 10th command fights over a shared ctx name.
    commands.push(
      i % 10 === 9
        ? { id: `${name}-${i}`, type: i % 20 === 9 ? 'ctx.open' : 'ctx.close', ctx: 'shared' }
        : i % 2 === 0
          ? { id: `${name}-${i}`, type: 'map', domain: `dom-${name}`, iova: hex(page * 0x1000n), length: '0x1000', pa: hex(0x80000000n + page * 0x1000n), prot: 'rw' }
          : { id: `${name}-${i}`, type: 'unmap', domain: `dom-${name}`, iova: hex(page * 0x1000n), length: '0x1000' },
    );
  }
  // Small group commits (25 commands per append) so the two writers interleave and conflict often.
  for (let i = 0; i < commands.length; i += 25) {
    const chunk = commands.slice(i, i + 25);
    await m.execMany(chunk, (r, k) => {
      process.stdout.write(`${JSON.stringify({ id: chunk[k]!.id, ok: r.ok, status: r.status ?? null, pos: r.pos })}\n`);
    });
  }
  process.stdout.write(`${JSON.stringify({ done: true, pos: m.state.pos, digest: stateDigest(m.state), conflicts: m.conflicts })}\n`);
  await store.close();
};

await main();
