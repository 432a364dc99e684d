/**
 * Observed logs (issue 8, SPEC §1, §9): events that break a rule are facts; they import fine and
 * raise the right alert at their position, `isogroup check` exits 1 listing them, and the log
 * keeps them exactly. What cannot be applied at all is refused before it reaches the log.
 */
import { describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { validateEvent, type AlertKind } from '../../domain/index.js';
import { createManager } from '../../src/manager.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { cli, tempDir } from '../cli/run.js';
import { invariantViolations } from '../domain/invariants.js';

const at = (n: number): string => `2026-11-21T10:00:${String(n).padStart(2, '0')}.000Z`;
const ev = (type: string, data: Record<string, unknown>, n = 0): Record<string, unknown> => ({ type, data, meta: { at: at(n), actor: { uid: 0, comm: 'kernel' } } });

/** A host as a real kernel reported it: an IOMMU with an MSI window, a multifunction card (one group). */
const HOST = [
  ev('IommuAdded', { iommu: 'dmar0', reserved: [{ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' }] }),
  ev('DeviceAdded', { device: 'pci0000:00', parent: null, bus: 'pci', pci: { kind: 'host-bridge' } }),
  ev('DeviceAdded', { device: '0000:00:01.0', parent: 'pci0000:00', bus: 'pci', iommu: 'dmar0', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } }),
  ev('DeviceAdded', { device: '0000:01:00.0', parent: '0000:00:01.0', bus: 'pci', pci: { kind: 'endpoint', acs: null } }),
  ev('DeviceAdded', { device: '0000:01:00.1', parent: '0000:00:01.0', bus: 'pci', pci: { kind: 'endpoint', acs: null }, reserved: [{ start: '0x8000', last: '0x8fff', kind: 'reserved' }] }),
  ev('DriverBound', { device: '0000:01:00.0', driver: 'vfio-pci', managedDma: true }),
  ev('DriverBound', { device: '0000:01:00.1', driver: 'vfio-pci', managedDma: true }),
  ev('ContextOpened', { ctx: 'qemu', kind: 'iommufd', uid: 1000 }),
  ev('DeviceBound', { device: '0000:01:00.0', ctx: 'qemu' }),
  ev('DomainAllocated', { domain: 'ioas', ctx: 'qemu', iommu: 'dmar0', kind: 'paging' }),
  ev('DomainAllocated', { domain: 'other', ctx: 'qemu', iommu: 'dmar0', kind: 'paging' }),
  ev('DeviceAttached', { device: '0000:01:00.0', domain: 'ioas' }),
  ev('Mapped', { domain: 'ioas', iova: '0x0', last: '0x1fff', pa: '0x80000000', prot: 'rw' }),
];

/** Rule-breaking events, each with the alert kind it must raise. */
const BREACHES: readonly [string, Record<string, unknown>, AlertKind][] = [
  ['a kernel driver bound inside a user-owned group', ev('DriverBound', { device: '0000:01:00.1', driver: 'snd_hda_intel', managedDma: false }, 20), 'kernel-driver-in-user-group'],
  ['a mapping over an IOMMU-level reserved (MSI) region', ev('Mapped', { domain: 'ioas', iova: '0xfee00000', last: '0xfee00fff', pa: '0x1000', prot: 'rw' }, 21), 'mapping-over-reserved'],
  ['a mapping over another mapping', ev('Mapped', { domain: 'ioas', iova: '0x1000', last: '0x2fff', pa: '0x90000000', prot: 'r' }, 22), 'mapping-overlap'],
  ['a group split across two domains', ev('DeviceAttached', { device: '0000:01:00.1', domain: 'other' }, 23), 'group-split-domain'],
  ['a user-owned device that vanished', ev('DeviceRemoved', { device: '0000:01:00.0', surprise: true, ctx: 'qemu' }, 24), 'user-device-vanished'],
  ['a device without a group bound to a ctx', ev('DeviceBound', { device: 'usb7', ctx: 'qemu' }, 25), 'unknown-reference'],
];

/** What `isogroup import` hands the manager: the event checked and its defaults filled. */
const checked = (events: readonly Record<string, unknown>[]): never =>
  events.map((e) => ({ ...e, ...validateEvent(e.type, e.data) })) as never;

const lines = (events: readonly Record<string, unknown>[]): string => `${events.map((e) => JSON.stringify(e)).join('\n')}\n`;

describe('observed rule-breaking events import fine and raise the right alert at their position', () => {
  test.each(BREACHES)('%s (CLI import, then check exits 1 listing it)', async (_what, breach, kind) => {
    const dir = tempDir();
    const store = `file:${join(dir, 'log.jsonl')}`;
    const imported = await cli(['--store', store, '--json', 'import', '-'], { stdin: lines([...HOST, breach]) });
    expect(imported.code).toBe(0);
    expect(imported.json()[0]).toMatchObject({ imported: HOST.length + 1, from: 1, to: HOST.length + 1 });
    // The clean host has no alert; the breach has exactly its own, at its own position.
    const check = await cli(['--store', store, '--json', 'check']);
    expect(check.code).toBe(1);
    const report = check.json<{ ok: boolean; alerts: { pos: number; kind: string; at: string }[] }>()[0]!;
    expect(report.ok).toBe(false);
    expect(report.alerts.map((a) => [a.pos, a.kind])).toEqual([[HOST.length + 1, kind]]);
    expect(report.alerts[0]!.at).toBe((breach.meta as { at: string }).at);
    const human = await cli(['--store', store, 'check']);
    expect(human.code).toBe(1);
    expect(human.stdout).toBe(`#${HOST.length + 1} ${kind}: ${human.stdout.split(': ').slice(1).join(': ')}`);
    // The fact is kept as it was reported.
    const exported = (await cli(['--store', store, 'export'])).json<{ type: string; data: unknown; meta: { observed?: boolean } }>();
    expect(exported.at(-1)).toMatchObject({ type: breach.type, meta: { observed: true } });
    expect(exported.at(-1)!.data).toMatchObject(breach.data as Record<string, unknown>);
  });

  test('all of them in one log, through manager.import: one alert each, in log order; §9 flags the same state', async () => {
    const m = createManager({ store: createMemoryStore() });
    await m.load();
    const pos = await m.import(checked([...HOST, ...BREACHES.map(([, e]) => e)]));
    expect(pos).toEqual(Array.from({ length: HOST.length + BREACHES.length }, (_, i) => i + 1));
    const kinds = m.state.alerts.map((a) => [a.pos, a.kind]);
    BREACHES.forEach(([, , kind], i) => expect(kinds).toContainEqual([HOST.length + 1 + i, kind]));
    expect(m.state.alerts.every((a) => a.pos > HOST.length)).toBe(true);
    expect(invariantViolations(m.state).length).toBeGreaterThan(0);
  });

  test('the same breach as a command is refused (rules live in decide; alerts are for observed facts)', async () => {
    const m = createManager({ store: createMemoryStore() });
    await m.load();
    await m.import(checked(HOST));
    const r = await m.exec({ type: 'driver.bind', device: '0000:01:00.1', driver: 'snd_hda_intel' });
    expect(r).toMatchObject({ ok: false, status: 'EBUSY' });
    const map = await m.exec({ type: 'map', domain: 'ioas', iova: '0xfee00000', length: '0x1000', pa: '0x1000', prot: 'rw', actor: { uid: 1000 } });
    expect(map).toMatchObject({ ok: false, status: 'EINVAL' });
    expect(m.state.alerts).toEqual([]);
  });
});

describe('what the reducer cannot apply never reaches the log', () => {
  test('manager.import refuses it naming the event, and appends nothing', async () => {
    const store = createMemoryStore();
    const m = createManager({ store });
    await m.load();
    await m.import(checked(HOST));
    const fine = checked([ev('ContextOpened', { ctx: 'other', kind: 'iommufd', uid: 1001 }, 30)]);
    for (const bad of [
      { type: 'DeviceAdded', data: { device: '0000:02:00.0', parent: null, bus: 'pci', pci: { kind: 'endpoint', acs: {} } }, meta: { at: at(31) } },
      { type: 'Unmapped', data: { domain: 'ioas', areas: [null] }, meta: { at: at(34) } },
    ]) {
      await expect(m.import([...(fine as unknown[]), bad] as never)).rejects.toThrow(/^events\[1\]: .* cannot be applied .*nothing was imported/);
      expect(await store.version('host-local')).toBe(HOST.length);
      expect(m.state.pos).toBe(HOST.length);
    }
  });

  test('event types named like Object properties are unknown types: kept and ignored, like any other', async () => {
    const store = createMemoryStore();
    const m = createManager({ store });
    await m.load();
    await m.import(checked(HOST));
    const before = m.state;
    const pos = await m.import([
      { type: 'valueOf', data: {}, meta: { at: at(32) } },
      { type: '__proto__', data: {}, meta: { at: at(33) } },
      { type: 'constructor', data: {}, meta: { at: at(34) } },
    ] as never);
    expect(pos).toEqual([HOST.length + 1, HOST.length + 2, HOST.length + 3]);
    for (const k of ['iommus', 'devices', 'groups', 'ctxs', 'domains', 'alerts'] as const) expect(m.state[k]).toBe(before[k]);
    // A fresh load of the log applies them the same way.
    const again = createManager({ store });
    await again.load();
    expect(again.state.pos).toBe(HOST.length + 3);
    expect(again.state.groups).toEqual(before.groups);
  });

  test('the CLI refuses it at validation, naming the line', async () => {
    const dir = tempDir();
    const store = `file:${join(dir, 'log.jsonl')}`;
    for (const [bad, field] of [
      [{ type: 'DeviceAdded', data: { device: 'x', vendor: { deep: [1] } }, meta: {} }, 'data.vendor'],
      [{ type: 'IommuAdded', data: { iommu: 'v', personality: 'virtio', domainRange: 'all' }, meta: {} }, 'data.domainRange'],
      [{ type: '__proto__', data: {}, meta: {} }, 'type'],
      [{ type: 'valueOf', data: {}, meta: {} }, 'type'],
    ] as const) {
      const r = await cli(['--store', store, 'import', '-'], { stdin: lines([HOST[0]!, bad]) });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^isogroup: line 2: ${field.replace('.', '\\.')}: .*nothing was imported\\n$`));
    }
    expect((await cli(['--store', store, 'export'])).stdout).toBe('');
  });

  test('re-importing events with the same ids is a no-op, not a second application', async () => {
    const m = createManager({ store: createMemoryStore() });
    await m.load();
    const withIds = (checked(HOST) as Record<string, unknown>[]).map((e, i) => ({ ...e, id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` }));
    const first = await m.import(withIds as never);
    const state = m.state;
    expect(await m.import(withIds as never)).toEqual(first);
    expect(m.state).toBe(state);
  });
});
