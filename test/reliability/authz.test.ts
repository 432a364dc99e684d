/**
 * Who may do what (issue 8, SPEC §4, §4.1, §6): every privileged command needs uid 0 [EACCES];
 * every command naming a ctx acts only for the ctx's owner uid (or root) [EPERM]; a user cannot
 * attach another user's domain nor map into it, nor touch kernel domains; device files need a
 * grant. Each refusal appends one CommandRejected and changes nothing else; the same command by
 * the right uid goes through, so the refusal is about the uid and nothing else.
 */
import { describe, expect, test } from '@jest/globals';
import { PRIVILEGED } from '../../domain/index.js';
import type { Engine } from '../../src/engine.js';
import { cli, tempDir } from '../cli/run.js';
import { checkInvariants } from '../domain/invariants.js';
import { hostWith } from '../helpers.js';
import type { Cmd } from './kit.js';

const ROOT = { uid: 0 };
const ALICE = { uid: 1000 };
const BOB = { uid: 1001 };

/**
 * Alice (1000) owns ctx `a` with 0000:01:00.0 bound and attached to her domain `da` (one mapping);
 * Bob (1001) owns ctx `b` with 0000:02:00.0 bound; a virtio endpoint `vdev` is in a group Bob
 * claimed, attached to virtio domain 1. Root has a kernel domain `kd`.
 */
const WORLD: readonly Cmd[] = [
  { type: 'iommu.add', iommu: 'i0', maxPasids: 8 },
  { type: 'iommu.add', iommu: 'v0', personality: 'virtio' },
  { type: 'device.add', device: 'pci0000:00', parent: null },
  { type: 'device.add', device: '0000:00:01.0', parent: 'pci0000:00', iommu: 'i0', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
  { type: 'device.add', device: '0000:00:02.0', parent: 'pci0000:00', iommu: 'i0', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
  { type: 'device.add', device: '0000:01:00.0', parent: '0000:00:01.0' },
  { type: 'device.add', device: '0000:02:00.0', parent: '0000:00:02.0' },
  { type: 'device.add', device: 'vdev', parent: null, bus: 'platform', iommu: 'v0' },
  { type: 'device.add', device: 'free', parent: null, bus: 'platform', iommu: 'i0' },
  { type: 'driver.bind', device: '0000:01:00.0', driver: 'vfio-pci' },
  { type: 'driver.bind', device: '0000:02:00.0', driver: 'vfio-pci' },
  { type: 'device.grant', device: '0000:01:00.0', uid: 1000 },
  { type: 'device.grant', device: '0000:02:00.0', uid: 1001 },
  { type: 'device.grant', device: 'vdev', uid: 1001 },
  { type: 'ctx.open', ctx: 'a', actor: ALICE },
  { type: 'ctx.open', ctx: 'b', actor: BOB },
  { type: 'device.bind', device: '0000:01:00.0', ctx: 'a', actor: ALICE },
  { type: 'device.bind', device: '0000:02:00.0', ctx: 'b', actor: BOB },
  { type: 'domain.alloc', domain: 'da', ctx: 'a', iommu: 'i0', pasidCapable: true, actor: ALICE },
  { type: 'domain.alloc', domain: 'db', ctx: 'b', iommu: 'i0', actor: BOB },
  { type: 'domain.alloc', domain: 'spare', ctx: 'a', iommu: 'i0', actor: ALICE },
  { type: 'domain.alloc', domain: 'kd', iommu: 'i0', kind: 'paging' },
  { type: 'device.attach', device: '0000:01:00.0', domain: 'da', actor: ALICE },
  { type: 'map', domain: 'da', iova: '0x0', length: '0x2000', pa: '0x80000000', prot: 'rw', actor: ALICE },
  { type: 'kvm.associate', ctx: 'a', vm: 'vm-a', actor: ALICE },
  { type: 'group.claim', group: 'vdev', ctx: 'b', actor: BOB },
  { type: 'device.attach', device: 'vdev', domain: '1', actor: BOB },
  { type: 'map', domain: '1', iova: '0x0', length: '0x1000', pa: '0x1000', prot: 'rw', actor: BOB },
];

const world = (): Engine => {
  const e = hostWith(WORLD);
  checkInvariants(e.state);
  return e;
};

/** Runs `cmd` as `actor` on a fresh world: refused with `status` (only CommandRejected appended, nothing else changed). */
const refusedAs = (cmd: Cmd, actor: { uid: number }, status: string, message?: RegExp): void => {
  const e = world();
  const before = e.state;
  const r = e.exec({ ...cmd, actor });
  expect({ status: r.status, ok: r.ok }).toEqual({ status, ok: false });
  if (message) expect(r.message).toMatch(message);
  expect(r.events).toEqual(['CommandRejected']);
  for (const k of ['iommus', 'devices', 'groups', 'ctxs', 'domains', 'reach', 'alerts'] as const) expect(e.state[k]).toBe(before[k]);
};

/** Runs `cmd` as `actor` on a fresh world (after `first`, as root): accepted. */
const acceptedAs = (cmd: Cmd, actor: { uid: number }, first: readonly Cmd[] = []): void => {
  const e = world();
  for (const c of first) expect(e.exec(c)).toMatchObject({ ok: true });
  const r = e.exec({ ...cmd, actor });
  if (!r.ok) throw new Error(`${JSON.stringify(cmd)} as uid ${actor.uid}: ${r.status} ${r.message}`);
  checkInvariants(e.state);
};

/** One accepted instance of every privileged command of SPEC §4 (marked P). */
const PRIVILEGED_COMMANDS: readonly Cmd[] = [
  { type: 'iommu.add', iommu: 'i9' },
  { type: 'device.add', device: '0000:00:03.0', parent: 'pci0000:00', iommu: 'i0', pci: { kind: 'root-port' } },
  { type: 'device.remove', device: 'free' },
  { type: 'device.acs', device: '0000:00:01.0', ctl: 'SV' },
  { type: 'driver.bind', device: 'free', driver: 'e1000e' },
  { type: 'driver.unbind', device: '0000:02:00.0' },
  { type: 'device.grant', device: 'free', uid: 1000 },
  { type: 'device.revoke', device: '0000:01:00.0', uid: 1000 },
  { type: 'host.boot', kernel: '6.17.0', rules: 'linux-acs-rework-v3' },
  // Facts only the kernel knows, added with resets, peer-to-peer reach and iommufd (issues 19-21).
  { type: 'device.reset-caps', device: '0000:01:00.0', flr: true },
  { type: 'device.mmio', device: '0000:01:00.0', bars: [{ bar: 0, start: '0xe0000000', size: '0x1000000' }] },
  { type: 'device.iopf', device: '0000:01:00.0', capable: true },
  { type: 'device.vf', device: '0000:02:00.0', pf: '0000:01:00.0' },
  // Host-critical marks (issue 15): what the host needs is the host's to say.
  { type: 'device.critical', device: '0000:01:00.0', role: 'boot-vga' },
];

describe('privileged commands need uid 0 (EACCES)', () => {
  test('the list is SPEC §4, host.boot (issue 15: a boot is the kernel\'s) and the hardware facts of issues 19-21', () => {
    expect([...PRIVILEGED].sort()).toEqual([
      'device.acs',
      'device.add',
      'device.critical',
      'device.grant',
      'device.iopf',
      'device.mmio',
      'device.remove',
      'device.reset-caps',
      'device.revoke',
      'device.vf',
      'driver.bind',
      'driver.unbind',
      'host.boot',
      'iommu.add',
    ]);
    expect(PRIVILEGED_COMMANDS.map((c) => c.type).sort()).toEqual([...PRIVILEGED].sort());
  });

  test.each(PRIVILEGED_COMMANDS.map((c) => [c.type, c] as const))('%s: EACCES for uid 1000 and for a ctx owner, accepted for root', (_t, cmd) => {
    // driver.unbind of a ctx-bound device is EBUSY even for root; unbind Bob's device after he lets go.
    const fix = cmd.type === 'driver.unbind' ? { device: 'free' } : {};
    for (const actor of [ALICE, BOB, { uid: 65534 }]) refusedAs({ ...cmd, ...fix }, actor, 'EACCES', new RegExp(`^actor: ${String(cmd.type).replace('.', '\\.')} needs uid 0 \\(got uid ${actor.uid}\\)`));
    if (cmd.type === 'driver.unbind') {
      const e = world();
      expect(e.exec({ type: 'driver.bind', device: 'free', driver: 'e1000e' }).ok).toBe(true);
      expect(e.exec({ type: 'driver.unbind', device: 'free', actor: ALICE }).status).toBe('EACCES');
      expect(e.exec({ type: 'driver.unbind', device: 'free' }).ok).toBe(true);
    } else acceptedAs(cmd, ROOT);
  });

  test('field validation comes before the uid check (SPEC §4.1)', () => {
    refusedAs({ type: 'device.add', device: '0000:00:03.0', parent: 'pci0000:00', pci: { kind: 'gpu' } }, ALICE, 'EINVAL', /^pci\.kind: /);
    refusedAs({ type: 'device.grant', device: 'free', uid: -1 }, ALICE, 'EINVAL', /^uid: /);
  });

  test('a kernel domain (no ctx) is privileged too: domain.alloc EACCES, map/unmap/attach/free EPERM', () => {
    refusedAs({ type: 'domain.alloc', domain: 'k2', iommu: 'i0' }, ALICE, 'EACCES');
    refusedAs({ type: 'map', domain: 'kd', iova: '0x0', length: '0x1000', pa: '0x0', prot: 'rw' }, ALICE, 'EPERM', /kernel domain/);
    refusedAs({ type: 'domain.free', domain: 'kd' }, ALICE, 'EPERM', /kernel domain/);
    refusedAs({ type: 'device.attach', device: 'free', domain: 'kd' }, ALICE, 'EPERM', /kernel domain/);
    acceptedAs({ type: 'map', domain: 'kd', iova: '0x0', length: '0x1000', pa: '0x0', prot: 'rw' }, ROOT);
  });
});

/** Every command that names Alice's ctx `a` (directly or through her domain or device), accepted for her. */
const CTX_COMMANDS: readonly Cmd[] = [
  { type: 'ctx.close', ctx: 'a' },
  { type: 'group.claim', group: 'free', ctx: 'a' },
  { type: 'group.release', group: '0000:01:00.0', ctx: 'a' },
  { type: 'device.bind', device: '0000:01:00.0', ctx: 'a' },
  { type: 'device.unbind', device: '0000:01:00.0' },
  { type: 'domain.alloc', domain: 'd-new', ctx: 'a', iommu: 'i0' },
  { type: 'domain.free', domain: 'spare' },
  { type: 'device.attach', device: '0000:01:00.0', domain: 'da', pasid: 3 },
  { type: 'device.detach', device: '0000:01:00.0' },
  { type: 'map', domain: 'da', iova: '0x10000', length: '0x1000', pa: '0x90000000', prot: 'r' },
  { type: 'unmap', domain: 'da', iova: '0x0', length: '0x2000' },
  { type: 'kvm.associate', ctx: 'a', vm: 'vm-x' },
  { type: 'kvm.dissociate', ctx: 'a', vm: 'vm-a' },
];

describe("a ctx acts only for its own uid (EPERM)", () => {
  test('every ctx-naming command of SPEC §4.1 is covered', () => {
    expect(new Set(CTX_COMMANDS.map((c) => c.type))).toEqual(
      new Set(['ctx.close', 'group.claim', 'group.release', 'device.bind', 'device.unbind', 'domain.alloc', 'domain.free', 'device.attach', 'device.detach', 'map', 'unmap', 'kvm.associate', 'kvm.dissociate']),
    );
  });

  test.each(CTX_COMMANDS.map((c) => [c.type, c] as const))("%s on Alice's ctx: EPERM for Bob and for uid 65534", (_t, cmd) => {
    for (const actor of [BOB, { uid: 65534 }]) refusedAs(cmd, actor, 'EPERM', /belongs to uid 1000|kernel domain/);
  });

  test.each(CTX_COMMANDS.filter((c) => !['group.claim', 'group.release', 'device.bind'].includes(c.type as string)).map((c) => [c.type, c] as const))('%s: accepted for Alice and for root', (_t, cmd) => {
    // One VM per ctx: associating another needs the first one gone.
    const first = cmd.type === 'kvm.associate' ? [{ type: 'kvm.dissociate', ctx: 'a', vm: 'vm-a' }] : [];
    acceptedAs(cmd, ALICE, first);
    acceptedAs(cmd, ROOT, first);
  });

  test('group.claim / group.release / device.bind go through for the owner when the state allows it', () => {
    const e = world();
    expect(e.exec({ type: 'device.grant', device: 'free', uid: 1000 }).ok).toBe(true);
    expect(e.exec({ type: 'group.claim', group: 'free', ctx: 'a', actor: BOB }).status).toBe('EPERM');
    expect(e.exec({ type: 'group.claim', group: 'free', ctx: 'a', actor: ALICE })).toMatchObject({ ok: true });
    expect(e.exec({ type: 'group.release', group: 'free', ctx: 'a', actor: BOB }).status).toBe('EPERM');
    expect(e.exec({ type: 'group.release', group: 'free', ctx: 'a', actor: ALICE })).toMatchObject({ ok: true });
    expect(e.exec({ type: 'device.unbind', device: '0000:01:00.0', actor: ALICE })).toMatchObject({ ok: true });
    expect(e.exec({ type: 'device.bind', device: '0000:01:00.0', ctx: 'a', actor: BOB }).status).toBe('EPERM');
    expect(e.exec({ type: 'device.bind', device: '0000:01:00.0', ctx: 'a', actor: ALICE })).toMatchObject({ ok: true });
    checkInvariants(e.state);
  });

  test('a closed or unknown ctx is ENOENT before any uid check; an open ctx cannot be re-opened by someone else', () => {
    refusedAs({ type: 'ctx.close', ctx: 'nope' }, BOB, 'ENOENT');
    refusedAs({ type: 'ctx.open', ctx: 'a' }, BOB, 'EEXIST');
    const e = world();
    e.exec({ type: 'ctx.close', ctx: 'a', actor: ALICE });
    expect(e.exec({ type: 'kvm.associate', ctx: 'a', vm: 'v', actor: BOB }).status).toBe('ENOENT');
  });
});

describe("a user cannot use another user's domain", () => {
  test("Bob cannot attach his own device to Alice's domain, nor map or unmap in it, nor free it", () => {
    refusedAs({ type: 'device.attach', device: '0000:02:00.0', domain: 'da' }, BOB, 'EPERM', /ctx: a belongs to uid 1000, not uid 1001/);
    refusedAs({ type: 'map', domain: 'da', iova: '0x100000', length: '0x1000', pa: '0x0', prot: 'rw' }, BOB, 'EPERM');
    refusedAs({ type: 'unmap', domain: 'da', iova: '0x0', length: '0x1000' }, BOB, 'EPERM');
    refusedAs({ type: 'domain.free', domain: 'spare' }, BOB, 'EPERM');
    acceptedAs({ type: 'device.attach', device: '0000:02:00.0', domain: 'db' }, BOB);
  });

  test("Alice cannot attach Bob's device to her domain even as its group's non-owner (EINVAL: not bound to her ctx)", () => {
    refusedAs({ type: 'device.attach', device: '0000:02:00.0', domain: 'da' }, ALICE, 'EINVAL', /not bound to ctx a/);
  });

  test('device files need a grant (EACCES) before a user may bind or claim', () => {
    refusedAs({ type: 'device.bind', device: '0000:02:00.0', ctx: 'a' }, ALICE, 'EACCES', /no device\.grant/);
    refusedAs({ type: 'group.claim', group: 'free', ctx: 'a' }, ALICE, 'EACCES', /has not been granted/);
  });

  test("virtio: requests on an endpoint of a user-owned group come only from its owner (or root)", () => {
    refusedAs({ type: 'device.attach', device: 'vdev', domain: '2' }, ALICE, 'EPERM');
    refusedAs({ type: 'device.detach', device: 'vdev', domain: '1' }, ALICE, 'EPERM');
    refusedAs({ type: 'map', domain: '1', iova: '0x10000', length: '0x1000', pa: '0x0', prot: 'rw' }, ALICE, 'EPERM');
    refusedAs({ type: 'unmap', domain: '1', iova: '0x0', length: '0x1000' }, ALICE, 'EPERM');
    acceptedAs({ type: 'map', domain: '1', iova: '0x10000', length: '0x1000', pa: '0x0', prot: 'rw' }, BOB);
    acceptedAs({ type: 'device.detach', device: 'vdev', domain: '1' }, ROOT);
  });

  test('through the CLI: the refusal is a result line with its status, exit 1, and the log records it', async () => {
    const store = `file:${tempDir()}/log.jsonl`;
    const input = [...WORLD, { type: 'map', domain: 'da', iova: '0x100000', length: '0x1000', pa: '0x0', prot: 'rw', actor: BOB }, { type: 'iommu.add', iommu: 'x', actor: ALICE }]
      .map((c) => JSON.stringify(c))
      .join('\n');
    const r = await cli(['--store', store, 'exec', '-'], { stdin: input });
    expect(r.code).toBe(1);
    const results = r.json<{ line: number; ok: boolean; status?: string; message?: string }>();
    expect(results.slice(-2)).toMatchObject([
      { line: WORLD.length + 1, ok: false, status: 'EPERM' },
      { line: WORLD.length + 2, ok: false, status: 'EACCES' },
    ]);
    const audit = await cli(['--store', store, '--json', 'audit', '--uid', '1001']);
    expect(audit.stdout).toMatch(/CommandRejected/);
  });
});
