/**
 * iommufd as it is now, scenario by scenario. Each refusal names the kernel rule (errno) and the
 * selftest case it follows (tools/testing/selftests/iommu/iommufd.c unless said otherwise).
 */
import { describe, expect, it } from '@jest/globals';
import { explainSync, whoCanReach, reacherJson, groupsJson, groupsView } from '../../projections/index.js';
import { verdictJson } from '../../domain/index.js';
import { createEngine, type Engine } from '../../src/engine.js';
import { ACS_ON, NO_ACS, dma, hostBridge, host, invariants as coreInvariants, linuxIommu, ok, pci, refused, story, type Cmd } from '../domain/kit.js';

const plain = (_k: string, v: unknown): unknown => (v instanceof Map ? [...v] : v instanceof Set ? [...v] : typeof v === 'bigint' ? `0x${v.toString(16)}` : v);

/** The core invariants, plus: replaying the log rebuilds the same iommufd objects. */
const invariants = (h: Engine): void => {
  coreInvariants(h);
  const replay = createEngine({ keepLog: false });
  replay.apply(h.log);
  expect(JSON.stringify(replay.state.iommufd, plain)).toBe(JSON.stringify(h.state.iommufd, plain));
};

const RP = '0000:00:01.0';
const EP = '0000:01:00.0';
const RP2 = '0000:00:02.0';
const GPU = '0000:02:00.0';

/** A VM's assigned NIC: bound to vfio-pci and to ctx `vmm`. */
const base = (): Cmd[] => [
  linuxIommu(),
  hostBridge(),
  pci(RP, 'pci0000:00', 'root-port', ACS_ON),
  pci(EP, RP, 'endpoint'),
  pci(RP2, 'pci0000:00', 'root-port', ACS_ON),
  pci(GPU, RP2, 'endpoint'),
  { type: 'driver.bind', device: EP, driver: 'vfio-pci' },
  { type: 'ctx.open', ctx: 'vmm', kind: 'iommufd' },
  { type: 'device.bind', device: EP, ctx: 'vmm' },
];

/** Stage 2 `s2` (nesting parent) maps guest RAM; vIOMMU `vi` gives EP virtual id 0x10; `s1` is the guest's. */
const nestedVm = (): Cmd[] => [
  ...base(),
  { type: 'hwpt.alloc', domain: 's2', ctx: 'vmm', device: EP, nestParent: true },
  { type: 'map', domain: 's2', iova: '0x100000', length: '0x1000', pa: '0x80000000', prot: 'rw' },
  { type: 'viommu.alloc', viommu: 'vi', ctx: 'vmm', device: EP, parent: 's2' },
  { type: 'vdevice.alloc', viommu: 'vi', device: EP, virtId: '0x10' },
  { type: 'hwpt.alloc', domain: 's1', ctx: 'vmm', device: EP, parent: 'vi' },
  { type: 'device.attach', device: EP, domain: 's1' },
];

describe('nested translation: vIOMMU, vDEVICE, nested domain', () => {
  it('answers `nested` (at most what stage 2 maps) and says which stage 2 bounds it', () => {
    const h = host(...nestedVm());
    const v = dma(h, EP, 0x100000, 'w');
    expect({ allowed: v.allowed, reason: v.reason, domain: v.domain, stage2: v.stage2 }).toEqual({ allowed: true, reason: 'nested', domain: 's1', stage2: 's2' });
    expect(verdictJson(v)).toMatchObject({ reason: 'nested', stage2: 's2', segments: [{ pa: { start: '0x80000000' } }] });
    const miss = dma(h, EP, 0x200000, 'r');
    expect({ allowed: miss.allowed, reason: miss.reason, domain: miss.domain, stage2: miss.stage2 }).toEqual({ allowed: false, reason: 'unmapped', domain: 's1', stage2: 's2' });
    invariants(h);
  });

  it('who-can lists the nested user of a stage 2 mapping as `nested`, and explain says at most', () => {
    const h = host(...nestedVm());
    const rows = whoCanReach(h.state, { pa: 0x80000000n, access: 'w' }).map(reacherJson);
    expect(rows).toEqual([expect.objectContaining({ device: EP, reason: 'nested', domain: 's1', stage2: 's2' })]);
    const x = explainSync(h.state, h.log, { device: EP, iova: 0x100000n, access: 'w' });
    expect(x.summary).toMatch(/allowed AT MOST: s1 is a nested domain whose stage 1 belongs to the guest; the host sees only stage 2 \(s2\)/);
    expect(x.chain.map((s) => s.type)).toEqual(expect.arrayContaining(['HwptAllocated', 'ViommuAllocated', 'VdeviceAllocated']));
  });

  it('refuses what the kernel refuses (alloc_hwpt_nested, iommufd_viommu)', () => {
    const h = host(...nestedVm());
    // iommufd_ioas.alloc_hwpt_nested: a nested HWPT on a parent that is not a nesting parent is EINVAL
    // (iommufd_hwpt_nested_alloc), and so is one on a nested HWPT.
    ok(h, { type: 'hwpt.alloc', domain: 'plain', ctx: 'vmm', device: EP });
    refused(h, { type: 'hwpt.alloc', domain: 'n2', ctx: 'vmm', device: EP, parent: 'plain' }, 'EINVAL', /not a nesting parent/);
    refused(h, { type: 'hwpt.alloc', domain: 'n2', ctx: 'vmm', device: EP, parent: 's1' }, 'EINVAL', /not a nesting parent/);
    // iommufd_hwpt_alloc turns a pt_id that names no object of the ctx into EINVAL, not ENOENT
    // (alloc_hwpt_nested: test_err_hwpt_alloc(EINVAL, device_id, device_id, ...)).
    refused(h, { type: 'hwpt.alloc', domain: 'n2', ctx: 'vmm', device: EP, parent: 'nope' }, 'EINVAL', /no domain or vIOMMU nope/);
    // Flags a nested HWPT does not take: EOPNOTSUPP (NEST_PARENT on a nested alloc).
    refused(h, { type: 'hwpt.alloc', domain: 'n2', ctx: 'vmm', device: EP, parent: 's2', nestParent: true }, 'EOPNOTSUPP');
    // iommufd_viommu.viommu_negative_tests: a vIOMMU on a parent that is not a nesting parent is EINVAL; an unknown one ENOENT.
    refused(h, { type: 'viommu.alloc', viommu: 'v2', ctx: 'vmm', device: EP, parent: 'plain' }, 'EINVAL');
    refused(h, { type: 'viommu.alloc', viommu: 'v2', ctx: 'vmm', device: EP, parent: 'nope' }, 'ENOENT');
    // iommufd_viommu.vdevice_alloc: one virtual id once, one vDEVICE per device.
    refused(h, { type: 'vdevice.alloc', viommu: 'vi', device: EP, virtId: '0x10' }, 'EEXIST', /already a vDEVICE/);
    refused(h, { type: 'vdevice.alloc', viommu: 'vi', device: EP, virtId: '0x11' }, 'EEXIST', /already has vDEVICE/);
    // alloc_hwpt_nested: the parent cannot be freed while nested HWPTs use it.
    refused(h, { type: 'domain.free', domain: 's2' }, 'EBUSY', /stage 2 of nested domain s1/);
    // Stage 1 belongs to the guest: the host maps only stage 2.
    refused(h, { type: 'map', domain: 's1', iova: '0x0', length: '0x1000', pa: '0x0', prot: 'rw' }, 'EINVAL', /only paging domains hold mappings/);
  });

  it('a nesting parent cannot be fault-capable (alloc_hwpt_nested: NEST_PARENT | FAULT_ID_VALID is EOPNOTSUPP)', () => {
    const h = host(...base(), { type: 'fault.alloc', fault: 'q', ctx: 'vmm' });
    refused(h, { type: 'hwpt.alloc', domain: 's2', ctx: 'vmm', device: EP, nestParent: true, fault: 'q' }, 'EOPNOTSUPP', /nesting parent cannot be fault-capable/);
    ok(h, { type: 'hwpt.alloc', domain: 's2', ctx: 'vmm', device: EP, nestParent: true });
  });

  it('attaching a vIOMMU\'s nested domain needs the device\'s vDEVICE first (vdevice_alloc: ENOENT)', () => {
    const noVdev = nestedVm().filter((c) => c.type !== 'vdevice.alloc');
    const h = host(...noVdev.slice(0, -1));
    refused(h, { type: 'device.attach', device: EP, domain: 's1' }, 'ENOENT', /no vDEVICE in vIOMMU vi/);
    ok(h, { type: 'vdevice.alloc', viommu: 'vi', device: EP, virtId: '0x99' });
    ok(h, { type: 'device.attach', device: EP, domain: 's1' });
    invariants(h);
  });

  it('attributes a fault the guest reports (vIOMMU, virtual id) to the physical device', () => {
    const h = host(...nestedVm());
    const r = ok(h, { type: 'viommu.fault', viommu: 'vi', virtId: '0x10', iova: '0x300000', access: 'w' });
    expect(story(h, r)).toEqual([['FaultRecorded', expect.objectContaining({ device: EP, iova: '0x300000', domain: 's1', source: 'vdevice vi/0x10' })]]);
    refused(h, { type: 'viommu.fault', viommu: 'vi', virtId: '0x99', iova: '0x0', access: 'r' }, 'ENOENT');
  });

  it('ends with its ctx: after ctx.close and a new ctx of the same name, the old vIOMMU is gone', () => {
    const h = host(...nestedVm(), { type: 'ctx.close', ctx: 'vmm' }, { type: 'ctx.open', ctx: 'vmm' });
    refused(h, { type: 'vdevice.alloc', viommu: 'vi', device: EP, virtId: '0x12' }, 'ENOENT');
    invariants(h);
  });
});

describe('I/O page faults: fault queues and fault-capable domains', () => {
  const iopf = (): Cmd[] => [
    ...base(),
    { type: 'fault.alloc', fault: 'q', ctx: 'vmm' },
    { type: 'hwpt.alloc', domain: 'sva', ctx: 'vmm', device: EP, fault: 'q' },
    { type: 'map', domain: 'sva', iova: '0x1000', length: '0x1000', pa: '0x9000', prot: 'rw' },
  ];

  it('refuses a fault-capable domain on a device that cannot fault (ENODEV), and ENOENT for an unknown queue', () => {
    const h = host(...iopf());
    // VT-d intel_iommu_enable_iopf: no PRI is ENODEV.
    refused(h, { type: 'device.attach', device: EP, domain: 'sva' }, 'ENODEV', /cannot take I\/O page faults/);
    // alloc_hwpt_nested / viommu_alloc_nested_iopf: an unknown fault_id is ENOENT.
    refused(h, { type: 'hwpt.alloc', domain: 'x', ctx: 'vmm', device: EP, fault: 'nope' }, 'ENOENT');
  });

  it('answers `on-fault` (allowed:false, a distinct verdict) and queues the fault; the response is an event', () => {
    const h = host(...iopf(), { type: 'device.iopf', device: EP }, { type: 'device.attach', device: EP, domain: 'sva' });
    const v = dma(h, EP, 0x5000, 'w');
    expect({ allowed: v.allowed, reason: v.reason, onFault: v.onFault, fault: v.fault }).toEqual({ allowed: false, reason: 'on-fault', onFault: { queue: 'q', ctx: 'vmm' }, fault: undefined });
    expect(dma(h, EP, 0x1000, 'w').reason).toBe('mapped');
    const r = ok(h, { type: 'dma', device: EP, iova: '0x5000', access: 'w' });
    expect(story(h, r).map(([t]) => t)).toEqual(['DmaChecked', 'PageFaulted']);
    expect(story(h, r)[1]![1]).toMatchObject({ fault: 'q', cookie: 1, device: EP, domain: 'sva' });
    const resp = ok(h, { type: 'fault.respond', fault: 'q', cookie: 1, code: 'success' });
    expect(story(h, resp)).toEqual([['PageFaultResponded', { fault: 'q', cookie: 1, code: 'success', device: EP }]]);
    // iommufd_fault_fops_write: a cookie with no pending fault is EINVAL.
    refused(h, { type: 'fault.respond', fault: 'q', cookie: 1 }, 'EINVAL');
    // The uAPI has two response codes, success and invalid: any other is EINVAL.
    ok(h, { type: 'dma', device: EP, iova: '0x6000', access: 'r' });
    refused(h, { type: 'fault.respond', fault: 'q', cookie: 2, code: 'failure' }, 'EINVAL', /success or invalid/);
    ok(h, { type: 'fault.respond', fault: 'q', cookie: 2, code: 'invalid' });
    invariants(h);
  });
});

describe('revocable DMABUF mappings of a peer BAR', () => {
  const gpu = (): Cmd[] => [
    ...base(),
    { type: 'driver.bind', device: GPU, driver: 'vfio-pci' },
    { type: 'ctx.open', ctx: 'gpu', actor: { uid: 1000 } },
    { type: 'device.grant', device: GPU, uid: 1000 },
    { type: 'device.bind', device: GPU, ctx: 'gpu', actor: { uid: 1000 } },
    { type: 'domain.alloc', domain: 'ioas', ctx: 'vmm', iommu: 'iommu0' },
    { type: 'device.attach', device: EP, domain: 'ioas' },
    { type: 'map.file', domain: 'ioas', iova: '0x40000000', length: '0x10000', pa: '0xe0000000', bar: `${GPU}:2`, prot: 'rw' },
  ];

  it('maps the BAR as MMIO, says the exporter can revoke it, and a revoke makes it vanish without an unmap', () => {
    const h = host(...gpu());
    const v = dma(h, EP, 0x40000000, 'w');
    expect({ reason: v.reason, revocable: v.revocable }).toEqual({ reason: 'mapped', revocable: { bar: `${GPU}:2`, exporter: 'gpu' } });
    refused(h, { type: 'mapping.revoke', bar: `${GPU}:2`, actor: { uid: 2000 } }, 'EPERM');
    const r = ok(h, { type: 'mapping.revoke', bar: { device: GPU, bar: 2 }, why: 'GPU reset', actor: { uid: 1000 } });
    expect(story(h, r)).toEqual([['MappingRevoked', { domain: 'ioas', areas: [{ iova: '0x40000000', last: '0x4000ffff', pa: '0xe0000000' }], bar: { device: GPU, bar: 2 }, why: 'GPU reset' }]]);
    const after = dma(h, EP, 0x40000000, 'w');
    expect({ allowed: after.allowed, reason: after.reason, revoked: after.revoked }).toEqual({ allowed: false, reason: 'revoked', revoked: { bar: `${GPU}:2`, pos: r.pos[0], why: 'GPU reset' } });
    refused(h, { type: 'mapping.revoke', bar: `${GPU}:2` }, 'ENOENT');
    invariants(h);
  });

  it('refuses a BAR that is not exported by vfio-pci, or out of range', () => {
    const h = host(...base(), { type: 'driver.bind', device: GPU, driver: 'nouveau' }, { type: 'domain.alloc', domain: 'ioas', ctx: 'vmm', iommu: 'iommu0' });
    refused(h, { type: 'map.file', domain: 'ioas', iova: '0x50000000', length: '0x1000', pa: '0xe0000000', bar: `${GPU}:2`, prot: 'rw' }, 'ENODEV');
    const bad = h.exec({ type: 'map.file', domain: 'ioas', iova: '0x50000000', length: '0x1000', pa: '0xe0000000', bar: `${GPU}:7`, prot: 'rw' });
    expect({ ok: bad.ok, status: bad.status, message: bad.message }).toEqual({ ok: false, status: 'EINVAL', message: 'bar: expected a BAR index from 0 to 5, got the string "7"' });
  });
});

describe('SR-IOV VF token (vfio_pci_core_match_token_uuid)', () => {
  const PF = '0000:03:00.0';
  const VF = '0000:04:00.0';
  const sriov = (): Cmd[] => [
    linuxIommu(),
    hostBridge(),
    pci('0000:00:03.0', 'pci0000:00', 'root-port', ACS_ON),
    pci(PF, '0000:00:03.0', 'endpoint'),
    pci('0000:00:04.0', 'pci0000:00', 'root-port', ACS_ON),
    pci(VF, '0000:00:04.0', 'endpoint'),
    { type: 'device.vf', device: VF, pf: PF },
    { type: 'driver.bind', device: PF, driver: 'vfio-pci' },
    { type: 'driver.bind', device: VF, driver: 'vfio-pci' },
    { type: 'ctx.open', ctx: 'pfo' },
    { type: 'device.bind', device: PF, ctx: 'pfo' },
    { type: 'vf.token', device: PF, token: '5ef6b6f8-1d4a-4c5e-8f1a-0123456789ab' },
    { type: 'ctx.open', ctx: 'vm' },
  ];

  it('refuses a VF bind without the PF owner token or with a wrong one (EACCES), accepts the right one', () => {
    const h = host(...sriov());
    refused(h, { type: 'device.bind', device: VF, ctx: 'vm' }, 'EACCES', /needs the VF token/);
    refused(h, { type: 'device.bind', device: VF, ctx: 'vm', vfToken: '00000000-0000-0000-0000-000000000000' }, 'EACCES', /incorrect VF token/);
    ok(h, { type: 'device.bind', device: VF, ctx: 'vm', vfToken: '5EF6B6F8-1D4A-4C5E-8F1A-0123456789AB' });
    invariants(h);
  });

  it('a token where none is used is EINVAL; only a PF takes one (ENOTTY); kernels before 6.17 take none through the cdev', () => {
    const h = host(...sriov());
    refused(h, { type: 'vf.token', device: VF, token: '5ef6b6f8-1d4a-4c5e-8f1a-0123456789ab' }, 'ENOTTY');
    ok(h, { type: 'device.unbind', device: PF });
    ok(h, { type: 'driver.unbind', device: PF });
    refused(h, { type: 'device.bind', device: VF, ctx: 'vm', vfToken: '5ef6b6f8-1d4a-4c5e-8f1a-0123456789ab' }, 'EINVAL', /not bound to vfio-pci/);
    const old = host({ type: 'host.boot', kernel: '6.12.0' }, ...sriov());
    refused(old, { type: 'device.bind', device: VF, ctx: 'vm', vfToken: '5ef6b6f8-1d4a-4c5e-8f1a-0123456789ab' }, 'EINVAL', /takes no VF token/);
    // Before the token flag the cdev bind checked no token at all: the VF binds without one.
    ok(old, { type: 'device.bind', device: VF, ctx: 'vm' });
  });

  it('a PF bound with a token while none of its VFs is in use takes it as its VF token', () => {
    const h = host(...sriov().filter((c) => c.type !== 'vf.token' && !(c.type === 'device.bind' && c.device === PF)));
    const r = ok(h, { type: 'device.bind', device: PF, ctx: 'pfo', vfToken: '11111111-2222-4333-8444-555555555555' });
    expect(story(h, r).map(([t]) => t)).toEqual(['DeviceBound', 'VfTokenSet']);
    refused(h, { type: 'device.bind', device: VF, ctx: 'vm' }, 'EACCES', /needs the VF token/);
    ok(h, { type: 'device.bind', device: VF, ctx: 'vm', vfToken: '11111111-2222-4333-8444-555555555555' });
    invariants(h);
  });
});

describe('memlock accounting (IOMMU_OPTION_RLIMIT_MODE)', () => {
  const user = (): Cmd[] => [
    ...base().slice(0, 7),
    { type: 'device.grant', device: EP, uid: 1000 },
    { type: 'ctx.open', ctx: 'vmm', actor: { uid: 1000 } },
    { type: 'ctx.option', ctx: 'vmm', rlimitMode: 'process', memlock: '0x2000' },
    { type: 'device.bind', device: EP, ctx: 'vmm', actor: { uid: 1000 } },
    { type: 'domain.alloc', domain: 'ioas', ctx: 'vmm', iommu: 'iommu0', actor: { uid: 1000 } },
    { type: 'device.attach', device: EP, domain: 'ioas', actor: { uid: 1000 } },
  ];

  it('refuses a map past the locked-memory limit with ENOMEM (incr_user_locked_vm / __account_locked_vm) and shows the budget', () => {
    const h = host(...user());
    ok(h, { type: 'map', domain: 'ioas', iova: '0x0', length: '0x1000', pa: '0x0', prot: 'rw', actor: { uid: 1000 } });
    refused(h, { type: 'map', domain: 'ioas', iova: '0x1000', length: '0x2000', pa: '0x0', prot: 'rw', actor: { uid: 1000 } }, 'ENOMEM', /per-process locked-memory limit 0x2000/);
    ok(h, { type: 'map', domain: 'ioas', iova: '0x1000', length: '0x1000', pa: '0x0', prot: 'rw', actor: { uid: 1000 } });
    const g = (groupsJson(groupsView(h.state)) as { groups: { owner: string | null; memlock?: unknown }[] }).groups.find((x) => x.owner === 'vmm');
    expect(g?.memlock).toEqual({ mode: 'process', limit: '0x2000', pinned: '0x2000' });
    invariants(h);
  });

  it('setting the mode needs CAP_SYS_RESOURCE (EPERM) and an empty context (EBUSY): iommufd_option_rlimit_mode', () => {
    const h = host(...user());
    refused(h, { type: 'ctx.option', ctx: 'vmm', rlimitMode: 'user', actor: { uid: 1000 } }, 'EPERM');
    refused(h, { type: 'ctx.option', ctx: 'vmm', rlimitMode: 'user' }, 'EBUSY', /bound device/);
    // Any object makes the ctx busy, a bound device alone included (its iommufd_device is an object).
    const bound = host(...user().slice(0, 10), { type: 'ctx.open', ctx: 'other' }, { type: 'device.bind', device: EP, ctx: 'vmm', actor: { uid: 1000 } });
    refused(bound, { type: 'ctx.option', ctx: 'vmm', rlimitMode: 'user' }, 'EBUSY', /holds bound device/);
    ok(bound, { type: 'ctx.option', ctx: 'other', rlimitMode: 'process' });
    ok(h, { type: 'ctx.option', ctx: 'vmm', rlimitMode: 'process', memlock: '0x4000' });
  });
});

describe('iommufd isolates per group, not per device', () => {
  it('explain on a bound device says the bind claimed the whole group and names the siblings', () => {
    const h = host(
      linuxIommu(),
      hostBridge(),
      pci(RP, 'pci0000:00', 'root-port', ACS_ON),
      pci('0000:01:00.0', RP, 'endpoint', NO_ACS),
      pci('0000:01:00.1', RP, 'endpoint', NO_ACS),
      { type: 'driver.bind', device: '0000:01:00.0', driver: 'vfio-pci' },
      { type: 'ctx.open', ctx: 'vmm' },
      { type: 'device.bind', device: '0000:01:00.0', ctx: 'vmm' },
    );
    const x = explainSync(h.state, h.log, { device: '0000:01:00.0' });
    expect(x.bind).toMatchObject({ ctx: 'vmm', siblings: ['0000:01:00.1'] });
    expect(x.bind?.sentence).toMatch(/claimed all of group \d+: iommufd isolates per group, not per device, so 0000:01:00\.1 can no longer be used by kernel drivers/);
    // And the model agrees: a kernel driver on the sibling is refused while the bind lasts.
    refused(h, { type: 'driver.bind', device: '0000:01:00.1', driver: 'e1000e' }, 'EBUSY');
  });
});
