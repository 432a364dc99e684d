import { describe, expect, test } from '@jest/globals';
import { createFleet } from '../../src/fleet.js';
import { createManager } from '../../src/manager.js';
import { createMemoryStore } from '../../src/store/memory.js';

const until = async (cond: () => boolean): Promise<void> => {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('a fleet follows every host of a store', () => {
  test('hosts written by other managers appear live, each host manager stays current', async () => {
    const store = createMemoryStore();
    const a = createManager({ store, host: 'node-a' });
    await a.exec({ type: 'iommu.add', iommu: 'i0' });
    const fleet = await createFleet({ store });
    const seen: string[] = [];
    const newHosts: string[] = [];
    fleet.events$.subscribe((e) => seen.push(`${e.host}#${e.event.pos}`));
    fleet.hosts$.subscribe((h) => newHosts.push(h));
    await fleet.caughtUp;
    seen.length = 0;
    expect(fleet.hosts()).toEqual(['node-a']);
    const ma = await fleet.manager('node-a');
    expect(ma.state.pos).toBe(1);

    const b = createManager({ store, host: 'node-b' });
    await b.exec({ type: 'iommu.add', iommu: 'j0' });
    await a.exec({ type: 'ctx.open', ctx: 'c1' });
    // events$ is live (hot): what was in the store before is in the host managers, not re-emitted.
    await until(() => seen.length >= 2);
    expect(seen).toEqual(['node-b#1', 'node-a#2']);
    expect(newHosts).toEqual(['node-b']);
    expect(fleet.hosts()).toEqual(['node-a', 'node-b']);
    await until(() => ma.state.pos === 2);
    expect(ma.state.ctxs.get('c1')?.open).toBe(true);
    const mb = await fleet.manager('node-b');
    expect(mb.state.iommus.has('j0')).toBe(true);
    await fleet.close();
  });
});
