import { describe, expect, test } from '@jest/globals';
import { createHost, parseMix, storm, stormSteps, type StormCommand } from '../../src/testkit/index.js';
import { createEngine } from '../../src/engine.js';
import { invariantViolations } from '../domain/invariants.js';

const run = (commands: readonly StormCommand[]) => {
  const host = createHost();
  const results = commands.map((c) => host.exec(c));
  return { host, results };
};

describe('the hotplug storm', () => {
  const commands = [...storm({ seed: 42, steps: 3000 })];
  const { host, results } = run(commands);

  test('yields exactly `steps` plain-JSON commands (addresses as hex strings, no bigint, no number address)', () => {
    expect(commands).toHaveLength(3000);
    expect(JSON.parse(JSON.stringify(commands))).toEqual(commands);
    for (const c of commands) {
      for (const k of ['iova', 'length', 'pa'] as const) if (k in c) expect(c[k]).toMatch(/^0x[0-9a-f]+$/);
    }
    expect([...storm({ seed: 42, steps: 10 })]).toEqual(commands.slice(0, 10));
    expect([...storm({ seed: 42, steps: 0 })]).toEqual([]);
  });

  test('the same seed gives the same commands; another seed other commands; string seeds work', () => {
    expect([...storm({ seed: 42, steps: 3000 })]).toEqual(commands);
    expect([...storm({ seed: '42', steps: 300 })]).toEqual(commands.slice(0, 300));
    expect([...storm({ seed: 43, steps: 300 })]).not.toEqual(commands.slice(0, 300));
    expect([...storm({ seed: 'nightly-2026-11-21', steps: 300 })]).toEqual([...storm({ seed: 'nightly-2026-11-21', steps: 300 })]);
  });

  test('the same seed through the engine with the default deterministic ids and clock gives the same log, byte for byte', () => {
    const again = run([...storm({ seed: 42, steps: 3000 })]).host;
    expect(JSON.stringify(again.log)).toBe(JSON.stringify(host.log));
    // And through a bare engine with the same ids and clock as createHost's defaults.
    const e = createEngine({ clock: (() => { let t = Date.parse('2026-11-21T10:00:00.000Z') - 1000; return () => new Date((t += 1000)); })(), newId: (() => { let n = 0; return () => `00000000-0000-4000-8000-${(++n).toString(16).padStart(12, '0')}`; })() });
    for (const c of storm({ seed: 42, steps: 3000 })) e.exec(c);
    expect(JSON.stringify(e.log)).toBe(JSON.stringify(host.log));
  });

  test('most commands are plausible: the engine accepts the large majority, and the shadow model predicts nearly every answer', () => {
    const refused = results.filter((r) => !r.ok).length;
    expect(refused / results.length).toBeGreaterThan(0.02);
    expect(refused / results.length).toBeLessThan(0.25);
    const steps = [...stormSteps({ seed: 42, steps: 3000 })];
    const agree = steps.filter((s, i) => s.expectOk === results[i]!.ok).length;
    expect(agree / steps.length).toBeGreaterThan(0.98);
  });

  test('accepted commands never break an invariant; the only alerts are user devices vanishing in surprise removals', () => {
    expect(invariantViolations(host.state)).toEqual([]);
    expect(new Set(host.alerts.map((a) => a.kind))).toEqual(new Set(['user-device-vanished']));
  });

  test('it covers the realistic sequences: hotplug, surprise removal of a user device, rebinding races, both ownership paths, both personalities', () => {
    const types = new Set(host.log.map((e) => e.type));
    for (const t of ['DeviceAdded', 'DeviceRemoved', 'DriverBound', 'DriverUnbound', 'AccessGranted', 'ContextOpened', 'ContextClosed', 'GroupClaimed', 'GroupReleased', 'DeviceBound', 'DeviceUnbound', 'DomainAllocated', 'DomainFreed', 'DeviceAttached', 'DeviceDetached', 'Mapped', 'Unmapped', 'KvmAssociated', 'DmaChecked', 'FaultRecorded', 'CommandRejected']) {
      expect([t, types.has(t)]).toEqual([t, true]);
    }
    // Surprise removals of devices a user context held.
    expect(host.log.some((e) => e.type === 'DeviceRemoved' && (e.data as { surprise: boolean }).surprise)).toBe(true);
    // Rebinding races: a claim or bind refused because a sibling still has a kernel driver.
    expect(results.some((r, i) => ['group.claim', 'device.bind'].includes(commands[i]!.type) && r.status === 'EPERM' && /kernel drivers still use it/.test(r.message!))).toBe(true);
    // Invalid maps, non-atomic linux unmaps, and the virtio personality's statuses.
    expect(results.some((r, i) => commands[i]!.type === 'map' && r.status === 'EINVAL')).toBe(true);
    expect(results.some((r) => r.status?.startsWith('S_'))).toBe(true);
    expect(host.log.some((e) => e.type === 'DeviceAttached' && host.log.some((x) => x.type === 'IommuAdded' && (x.data as { personality: string }).personality === 'virtio'))).toBe(true);
  });

  test('personality and mix shape the storm', () => {
    const linux = [...storm({ seed: 1, steps: 500, personality: 'linux' })];
    expect(linux.filter((c) => c.type === 'iommu.add').map((c) => c.iommu)).toEqual(['dmar0']);
    const virtio = [...storm({ seed: 1, steps: 500, personality: 'virtio' })];
    expect(virtio.filter((c) => c.type === 'iommu.add').map((c) => c.personality)).toEqual(['virtio']);
    const noMaps = [...storm({ seed: 1, steps: 800, mix: { map: 0, claim: 0, bind: 0, invalid: 0 } })];
    expect(noMaps.filter((c) => c.type === 'map')).toEqual([]);
    const heavy = [...stormSteps({ seed: 1, steps: 800, mix: parseMix('hotplug') })];
    const light = [...stormSteps({ seed: 1, steps: 800, mix: parseMix('mapping') })];
    const count = (s: typeof heavy, cat: string) => s.filter((x) => x.category === cat).length;
    expect(count(heavy, 'hotplug')).toBeGreaterThan(count(light, 'hotplug'));
    expect(() => [...storm({ seed: 1, steps: 10, mix: Object.fromEntries(['hotplug', 'unplug', 'surprise', 'driver', 'race', 'grant', 'ctx', 'claim', 'bind', 'domain', 'attach', 'map', 'unmap', 'dma', 'invalid'].map((k) => [k, 0])) })]).toThrow(/every mix weight is 0/);
    expect(() => [...storm({ seed: 1, steps: -1 })]).toThrow(/steps/);
  });

  test('parseMix: presets, pairs, errors', () => {
    expect(parseMix('map=5,dma=0')).toEqual({ map: 5, dma: 0 });
    expect(parseMix('mapping,dma=1')).toMatchObject({ map: 30, dma: 1 });
    expect(() => parseMix('frobnicate')).toThrow(/unknown preset "frobnicate"/);
    expect(() => parseMix('maps=1')).toThrow(/unknown category "maps"/);
    expect(() => parseMix('map=-1')).toThrow(/must be a number ≥ 0/);
  });
});
