/**
 * A seeded storm of iommufd commands over the canned iommufd hosts: whatever is accepted or
 * refused, replay rebuilds the same state, the verdicts keep their promises (`on-fault` is never
 * an allow, `nested` only on a nested domain, `revocable` only with a live DMABUF mapping), and
 * the state at every position answers like the live host did then (time travel).
 */
import { describe, expect, it } from '@jest/globals';
import { createEngine } from '../../src/engine.js';
import { canDmaAt, type State } from '../../domain/index.js';
import { createRng, gpuDmabuf, iopfDevice, nestedVm, type Host, type Rng } from '../../src/testkit/index.js';

const plain = (_k: string, v: unknown): unknown => (v instanceof Map ? [...v] : v instanceof Set ? [...v] : typeof v === 'bigint' ? `0x${v.toString(16)}` : v);

const page = (rng: Rng): string => `0x${(rng.int(64) * 0x1000).toString(16)}`;

/** One random command among the iommufd ones (and the core ones that interact with them). */
const step = (h: Host, rng: Rng, devs: readonly string[]): void => {
  const dev = rng.pick(devs);
  const dom = rng.pick([...h.state.domains.keys()].filter((d) => !d.startsWith('default:')).concat(['nope']));
  const ctx = rng.pick([...h.state.ctxs.keys()].concat(['nope']));
  switch (rng.int(12)) {
    case 0:
      h.hwptAlloc(`h${rng.int(6)}`, { ctx, device: dev, nestParent: rng.chance(0.5), ...(rng.chance(0.3) ? { parent: dom } : {}) });
      break;
    case 1:
      h.map({ domain: dom, iova: page(rng), length: '0x1000', pa: page(rng) });
      break;
    case 2:
      h.unmap({ domain: dom, iova: page(rng), length: '0x1000' });
      break;
    case 3:
      h.attach(dev, dom);
      break;
    case 4:
      h.dma({ device: dev, iova: page(rng), access: rng.chance(0.5) ? 'r' : 'w' });
      break;
    case 5:
      h.faultRespond(rng.pick(['faults', 'nope']), rng.between(1, 4));
      break;
    case 6:
      h.mapFile({ domain: dom, iova: page(rng), length: '0x1000', pa: '0xe0000000', bar: `${dev}:${rng.int(6)}` });
      break;
    case 7:
      h.revokeBar(`${dev}:${rng.int(6)}`);
      break;
    case 8:
      h.viommuAlloc(`v${rng.int(3)}`, { ctx, device: dev, parent: dom });
      break;
    case 9:
      h.vdeviceAlloc(rng.pick(['viommu0', 'v0', 'v1']), dev, BigInt(rng.int(4)));
      break;
    case 10:
      h.domainFree(dom);
      break;
    default:
      if (rng.chance(0.2)) h.ctxClose(ctx);
      else h.detach(dev);
  }
};

const verdicts = (s: State, devs: readonly string[]): string[] =>
  devs.flatMap((device) =>
    [0x0n, 0x1000n, 0x7000n, 0x40000000n].map((iova) => {
      const v = canDmaAt(s, { device, iova, access: 'r' });
      if (v.reason === 'on-fault') expect(v.allowed).toBe(false);
      if (v.reason === 'nested') expect(s.domains.get(v.domain!)?.kind).toBe('nested');
      if (v.revocable) expect(s.iommufd.fileMappings.length).toBeGreaterThan(0);
      return `${device}@${iova}:${v.allowed}/${v.reason}`;
    }),
  );

describe('seeded iommufd storm', () => {
  for (const [name, make] of [
    ['nestedVm', nestedVm],
    ['iopfDevice', iopfDevice],
    ['gpuDmabuf', gpuDmabuf],
  ] as const) {
    it(`${name}: replay and time travel agree with the live host`, () => {
      for (const seed of [1, 2, 3]) {
        const { host, devices } = make({ seed });
        const devs = Object.values(devices) as string[];
        const rng = createRng(seed);
        const seen: [number, string[]][] = [];
        const start = host.log.length;
        for (let i = 0; i < 120; i++) {
          step(host, rng, devs);
          if (i % 10 === 0) seen.push([host.state.pos, verdicts(host.state, devs)]);
        }
        // The storm does things, not only refusals.
        const types = new Set(host.log.slice(start).filter((e) => e.type !== 'CommandRejected').map((e) => e.type));
        expect(types.size).toBeGreaterThanOrEqual(4);
        const replay = createEngine({ keepLog: false });
        replay.apply(host.log);
        expect(JSON.stringify(replay.state.iommufd, plain)).toBe(JSON.stringify(host.state.iommufd, plain));
        expect(verdicts(replay.state, devs)).toEqual(verdicts(host.state, devs));
        for (const [pos, want] of seen) {
          const back = createEngine({ keepLog: false });
          back.apply(host.log.slice(0, pos));
          expect({ pos, got: verdicts(back.state, devs) }).toEqual({ pos, got: want });
        }
      }
    });
  }
});
