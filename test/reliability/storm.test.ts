/**
 * Invariants under storms (issue 8): fast-check model-based runs of random, mostly plausible command
 * sequences (hotplug/unplug storms, driver binds, grants, contexts, claims, device binds, domains,
 * attaches, maps, unmaps, DMA checks, surprise removals, KVM) against the synchronous engine.
 *
 * After every step: SPEC §9 (`checkInvariants`), and a refused command changed nothing but appended
 * its CommandRejected (the linux unmap may also append what it removed, SPEC §4.1). After every run:
 * replaying the log into a fresh engine gives the live state (canonical fingerprint).
 *
 * Default: 2,000 runs of up to 60 commands (a storm is one command of up to 12). ISOGROUP_PROPERTY_RUNS=N runs N instead.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import type { State } from '../../domain/index.js';
import { createEngine, type Engine } from '../../src/engine.js';
import { checkInvariants } from '../domain/invariants.js';
import { newHost } from '../helpers.js';
import { CTXS, DEVICES, DEVICE_IDS, NAMES_FIELD, SETUP, envInt, fingerprint, prng, randomCommand, report, type Cmd } from './kit.js';

const RUNS = envInt('ISOGROUP_PROPERTY_RUNS', 2000);
const MAX_COMMANDS = 60;

const newEngine = (): Engine => newHost();

const figures = { runs: 0, events: 0, commands: 0, accepted: 0, refused: 0, partialUnmaps: 0, storms: 0, surpriseRemovals: 0, replays: 0 };

const fail = (cmd: Cmd, why: string): never => {
  throw new Error(`${JSON.stringify(cmd)}: ${why}`);
};

/** Runs one command and checks what a single step must guarantee (plain checks: this is the hot loop). */
const step = (real: Engine, cmd: Cmd): void => {
  const before: State = real.state;
  const logBefore = real.log.length;
  const r = real.exec(cmd);
  figures.commands++;
  const appended = real.log.slice(logBefore);
  appended.forEach((e, i) => e.pos === before.pos + i + 1 || fail(cmd, `appended position ${e.pos}, expected ${before.pos + i + 1}`));
  if (r.ok) {
    figures.accepted++;
    if (cmd.type === 'device.remove' && appended.some((e) => e.type === 'DeviceRemoved' && (e.data as { ctx?: string }).ctx)) figures.surpriseRemovals++;
  } else {
    figures.refused++;
    if (appended[appended.length - 1]?.type !== 'CommandRejected') fail(cmd, 'a refusal must end with CommandRejected');
    if (!NAMES_FIELD.test(r.message ?? '')) fail(cmd, `refusal message names no field: ${r.message}`);
    if (appended.length === 2 && appended[0]!.type === 'Unmapped' && cmd.type === 'unmap') figures.partialUnmaps++;
    else {
      if (appended.length !== 1) fail(cmd, `refused (${r.status}) but appended ${appended.map((e) => e.type).join(', ')}`);
      const after = real.state;
      // Nothing else changed: immer keeps every untouched collection as the same object.
      for (const k of ['iommus', 'devices', 'groups', 'ctxs', 'domains', 'reach', 'alerts'] as const) {
        if (after[k] !== before[k]) fail(cmd, `refused (${r.status}) but changed state.${k}`);
      }
    }
  }
  checkInvariants(real.state);
};

type Model = { steps: number };

class Exec implements fc.Command<Model, Engine> {
  constructor(readonly cmd: Cmd) {}
  check = (): boolean => true;
  run(m: Model, real: Engine): void {
    m.steps++;
    step(real, this.cmd);
  }
  toString = (): string => JSON.stringify(this.cmd);
}

/** A burst of hotplug and unplug (surprise or not) without anything in between. */
class Storm implements fc.Command<Model, Engine> {
  constructor(readonly cmds: readonly Cmd[]) {}
  check = (): boolean => true;
  run(m: Model, real: Engine): void {
    m.steps++;
    figures.storms++;
    for (const c of this.cmds) step(real, c);
  }
  toString = (): string => `storm(${this.cmds.map((c) => `${String(c.type)} ${String(c.device)}${c.surprise ? ' surprise' : ''}`).join(', ')})`;
}

/** Plausible commands: drawn with the pools' PRNG so that fast-check shrinks on the seed. */
const plausible = fc.integer({ min: 1, max: 0x7fffffff }).map((seed) => new Exec(randomCommand(prng(seed))));

const storm = fc
  .array(
    fc.oneof(
      fc.constantFrom(...DEVICES),
      fc.record({ type: fc.constant('device.remove'), device: fc.constantFrom(...DEVICE_IDS), surprise: fc.boolean(), recursive: fc.boolean() }),
    ),
    { minLength: 2, maxLength: 12 },
  )
  .map((cmds) => new Storm(cmds as Cmd[]));

/** A user takes a device through the full iommufd path: vfio-pci, grant, open, bind, alloc, attach, map. */
const handOver = fc
  .record({ dev: fc.constantFrom(...DEVICE_IDS), ctx: fc.constantFrom(...CTXS), uid: fc.constantFrom(1000, 1001), page: fc.nat({ max: 7 }), vanish: fc.boolean() })
  .map(({ dev, ctx, uid, page, vanish }) => {
    const actor = { uid };
    const dom = `${ctx}-dom`;
    return new Storm([
      { type: 'driver.bind', device: dev, driver: 'vfio-pci' },
      { type: 'device.grant', device: dev, uid },
      { type: 'ctx.open', ctx, actor },
      { type: 'device.bind', device: dev, ctx, actor },
      { type: 'domain.alloc', domain: dom, ctx, iommu: 'i0', actor },
      { type: 'device.attach', device: dev, domain: dom, actor },
      { type: 'map', domain: dom, iova: `0x${(page * 0x1000).toString(16)}`, length: '0x2000', pa: '0x90000000', prot: 'rw', actor },
      ...(vanish ? [{ type: 'device.remove', device: dev, surprise: true }] : []),
    ]);
  });

/** Maps and unmaps in one user domain: overlaps, reserved regions, and the linux unmap that stops half-way. */
const OWNER_OF: Readonly<Record<string, number>> = { d1: 1000, d2: 1001, d3: 0 };
const page = (n: number): string => `0x${(n * 0x1000).toString(16)}`;
const mapStorm = fc
  .record({
    dom: fc.constantFrom('d1', 'd2', 'd3'),
    maps: fc.array(fc.record({ at: fc.nat({ max: 8 }), pages: fc.integer({ min: 1, max: 3 }) }), { minLength: 2, maxLength: 6 }),
    unmaps: fc.array(fc.record({ at: fc.nat({ max: 8 }), pages: fc.integer({ min: 1, max: 6 }) }), { minLength: 1, maxLength: 3 }),
  })
  .map(({ dom, maps, unmaps }) => {
    const actor = { uid: OWNER_OF[dom]! };
    return new Storm([
      ...maps.map((m) => ({ type: 'map', domain: dom, iova: page(m.at), length: page(m.pages), pa: page(0x90000 + m.at), prot: 'rw', actor })),
      ...unmaps.map((u) => ({ type: 'unmap', domain: dom, iova: page(u.at), length: page(u.pages), actor })),
    ]);
  });

const commands = fc.commands([plausible, plausible, plausible, storm, handOver, mapStorm], { maxCommands: MAX_COMMANDS });

describe('invariants under storms (model-based, SPEC §9 after every step)', () => {
  test(`${RUNS} random runs of up to ${MAX_COMMANDS} commands: §9 holds after every step; replay equals the live state`, () => {
    fc.assert(
      fc.property(commands, (cmds) => {
        const real = newEngine();
        for (const c of SETUP) step(real, c);
        fc.modelRun(() => ({ model: { steps: 0 }, real }), cmds);
        figures.runs++;
        figures.events += real.log.length;
        const replayed = createEngine({ keepLog: false });
        replayed.apply(real.log);
        figures.replays++;
        if (fingerprint(replayed.state) !== fingerprint(real.state)) throw new Error('replaying the log does not give the live state');
        checkInvariants(replayed.state);
      }),
      { numRuns: RUNS },
    );
    // The runs are not trivial: both outcomes and the interesting paths all occur.
    expect(figures.accepted).toBeGreaterThan(figures.runs * 5);
    expect(figures.refused).toBeGreaterThan(figures.runs);
    report('storm', { ...figures, numRuns: RUNS, maxCommands: MAX_COMMANDS });
  }, 600_000);
});
