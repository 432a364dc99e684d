/**
 * The dashboard's JSON API without a browser: every route, time travel with `at` (positions and
 * ISO times), the SSE stream (resume with Last-Event-ID: no loss, no duplicates), the token and
 * its 403s, the body limit, path traversal, and JSON errors without stack traces.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { request as httpRequest } from 'node:http';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { EventStore } from '../../src/store/types.js';
import type { Manager } from '../../src/manager.js';
import { get, http, sse, writeDemo, writer } from './helpers.js';

const TOKEN = 'test-token-123';
const GPU = '0000:0a:00.0';
const AUDIO = '0000:0a:00.1';
const NIC = '0000:04:00.0';
/** Demo positions (src/demo.ts): the refused claim, the bind that made qemu-vm1 the owner, the maps. */
const REFUSED_BIND = 22;
const BOUND = 25;
const MAPPED_RW = 28;
const MAPPED_R = 29;
const UNMAPPED = 36;

let store: EventStore;
let local: Manager;
let lab: Manager;
let srv: DashboardServer;
let base: string;
const logged: string[] = [];

beforeAll(async () => {
  store = createMemoryStore();
  local = await writeDemo(store, 'local');
  // A second host: a groupless device, and a domain with enough mappings to page through.
  lab = writer(store, 'lab');
  await lab.load();
  const cmds: Record<string, unknown>[] = [
    { type: 'iommu.add', iommu: 'vtd0', personality: 'linux', pageSizes: '0x1000', msiIsolation: true, reserved: [{ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' }] },
    { type: 'device.add', device: 'pci0000:00', parent: null, bus: 'pci', iommu: 'vtd0', pci: { kind: 'host-bridge' } },
    { type: 'device.add', device: '0000:00:02.0', parent: 'pci0000:00', bus: 'pci', pci: { kind: 'rc-endpoint' }, name: 'iGPU' },
    { type: 'device.add', device: 'platform-dma0', parent: null, bus: 'platform', name: 'DMA engine without an IOMMU' },
    { type: 'driver.bind', device: '0000:00:02.0', driver: 'vfio-pci' },
    { type: 'device.grant', device: '0000:00:02.0', uid: 1000 },
    { type: 'ctx.open', ctx: 'c1', kind: 'iommufd', actor: { uid: 1000 } },
    { type: 'device.bind', device: '0000:00:02.0', ctx: 'c1', actor: { uid: 1000 } },
    { type: 'domain.alloc', domain: 'big', ctx: 'c1', iommu: 'vtd0', kind: 'paging', actor: { uid: 1000 } },
    { type: 'device.attach', device: '0000:00:02.0', domain: 'big', actor: { uid: 1000 } },
  ];
  for (let k = 0; k < 250; k++) cmds.push({ type: 'map', domain: 'big', iova: `0x${(k * 0x2000).toString(16)}`, length: '0x1000', pa: `0x${(0x100000000 + k * 0x1000).toString(16)}`, prot: 'rw', actor: { uid: 1000 } });
  const results = await lab.execMany(cmds);
  expect(results.filter((r) => !r.ok)).toEqual([]);
  srv = await createServer({ store, port: 0, token: TOKEN, heartbeatMs: 100, log: (l) => void logged.push(l) });
  base = srv.url;
});

afterAll(async () => {
  await srv?.close();
  await store?.close();
});

const noStack = (text: string): void => {
  expect(text).not.toMatch(/\n\s+at /);
  expect(text).not.toMatch(/\.ts:\d+/);
};

describe('hosts and state', () => {
  test('GET /api/hosts lists the store\'s hosts with their sizes; the default is "local"', async () => {
    const r = await get(base, '/api/hosts');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.json).toEqual({ hosts: [{ host: 'lab', entries: lab.state.pos }, { host: 'local', entries: 36 }], default: 'local', writable: true });
  });

  test('GET /api/state: live summary, and the same at an earlier position or ISO time', async () => {
    const live = (await get(base, '/api/state')).json;
    expect(live).toMatchObject({ host: 'local', pos: 36, counts: { devices: 12, groups: 6, contexts: 2, mappings: 1, alerts: 0 }, live: { pos: 36 }, writable: true });
    const early = (await get(base, '/api/state?at=20')).json;
    expect(early).toMatchObject({ pos: 20, counts: { contexts: 0, mappings: 0 }, live: { pos: 36 } });
    // at=TIME: the state after every entry at or before that time.
    const t = local.timeOf(MAPPED_R)!;
    const byTime = (await get(base, `/api/state?at=${encodeURIComponent(t)}`)).json;
    expect(byTime).toMatchObject({ pos: MAPPED_R, at: t, counts: { mappings: 2 } });
    expect((await get(base, '/api/state?at=live')).json.pos).toBe(36);
    expect((await get(base, '/api/state?host=lab')).json).toMatchObject({ host: 'lab', counts: { mappings: 250 } });
  });

  test('a position past the end is the live state; bad `at` values are a 400 naming the parameter', async () => {
    expect((await get(base, '/api/state?at=999999')).json.pos).toBe(36);
    for (const bad of ['yesterday', '-3', '1.5', '0x10']) {
      const r = await get(base, `/api/state?at=${encodeURIComponent(bad)}`);
      expect(r.status).toBe(400);
      expect(r.json.error.message).toMatch(/^at: /);
    }
  });

  test('unknown hosts are a 404, malformed host names a 400', async () => {
    const r = await get(base, '/api/state?host=nope');
    expect(r.status).toBe(404);
    expect(r.json).toEqual({ error: { status: 404, message: expect.stringMatching(/no host "nope"/) } });
    expect((await get(base, '/api/groups?host=..%2Fetc')).status).toBe(400);
  });
});

describe('groups, devices, domains, mappings', () => {
  test('GET /api/groups: the GPU group is owned live, not owned before the claim', async () => {
    const find = (body: { groups: { members: { device: string }[] }[] }) => body.groups.find((g) => g.members.some((m) => m.device === GPU));
    const live = (await get(base, '/api/groups')).json;
    expect(find(live)).toMatchObject({ owner: 'qemu-vm1', vm: 'vm1', domain: 'vm1-ioas', viable: true });
    const before = (await get(base, `/api/groups?at=${BOUND - 1}`)).json;
    expect(before.pos).toBe(BOUND - 1);
    expect(find(before)).toMatchObject({ owner: null, viable: true });
    const refused = (await get(base, `/api/groups?at=${REFUSED_BIND}`)).json;
    expect(find(refused)).toMatchObject({ owner: null, viable: false, blockers: [{ device: AUDIO, driver: 'snd_hda_intel' }] });
    expect(find(live)?.members[1]).toMatchObject({ device: AUDIO, reason: { kind: 'multifunction', via: GPU }, why: expect.stringMatching(/multifunction/) });
  });

  test('GET /api/groups?brief=1 lists groups without member sentences; GET /api/groups/:id has one in full', async () => {
    const brief = (await get(base, '/api/groups?brief=1')).json;
    expect(brief.groups).toHaveLength(6);
    expect(brief.groups[1]).toEqual({ id: 1, iommu: 'amd-vi0', size: 2, first: GPU, owner: 'qemu-vm1', vm: 'vm1', viable: true, domain: 'vm1-ioas' });
    expect(brief.groupless).toBe(0);
    expect((await get(base, `/api/groups?brief=1&at=${REFUSED_BIND}`)).json.groups[1]).toMatchObject({ owner: null, viable: false, domain: 'default:1' });
    expect((await get(base, '/api/groups?host=lab&brief=1')).json.groupless).toBe(1);
    const one = (await get(base, `/api/groups/1?at=${REFUSED_BIND}`)).json;
    expect(one).toMatchObject({ id: 1, pos: REFUSED_BIND, viable: false, blockers: [{ device: AUDIO, driver: 'snd_hda_intel' }], members: [{ device: GPU }, { device: AUDIO, why: expect.stringMatching(/multifunction/) }] });
    expect((await get(base, '/api/groups/group:1')).json.owner).toBe('qemu-vm1');
    expect((await get(base, '/api/groups/99')).status).toBe(404);
    expect((await get(base, '/api/groups/x')).status).toBe(404);
    expect((await get(base, '/api/groups?brief=yes')).status).toBe(400);
  });

  test('GET /api/devices: the PCI tree with parent, children, kind, driver, group, owner and the flags', async () => {
    const body = (await get(base, '/api/devices')).json;
    expect(body.roots).toEqual(['pci0000:00']);
    const by = new Map<string, Record<string, unknown>>(body.devices.map((d: { id: string }) => [d.id, d]));
    expect(by.get('pci0000:00')).toMatchObject({ kind: 'host-bridge', group: null, groupless: false, children: ['0000:00:01.1', '0000:00:01.3'] });
    expect(by.get('0000:00:01.1')).toMatchObject({ kind: 'root-port', parent: 'pci0000:00', driver: 'pcieport', isolated: true, userOwned: false, kernelDma: false });
    expect(by.get(GPU)).toMatchObject({ kind: 'endpoint', parent: '0000:00:01.1', driver: 'vfio-pci', group: 1, groupSize: 2, isolated: false, userOwned: true, owner: 'qemu-vm1', vm: 'vm1' });
    expect(by.get(NIC)).toMatchObject({ driver: 'r8169', kernelDma: true, userOwned: false, isolated: false });
    expect(by.get('usb-hub0')).toMatchObject({ kind: 'foobus', parent: '0000:06:00.0', group: 5 });
    const labDevices = (await get(base, '/api/devices?host=lab')).json;
    expect(labDevices.devices.find((d: { id: string }) => d.id === 'platform-dma0')).toMatchObject({ groupless: true, group: null, isolated: false });
    // Time travel: before the drivers were bound.
    const early = (await get(base, '/api/devices?at=13')).json;
    expect(early.devices.find((d: { id: string }) => d.id === NIC)).toMatchObject({ driver: null, kernelDma: false });
  });

  test('the tree and the groups are tagged by content: a 304 when only mappings changed in between', async () => {
    const a = await get(base, `/api/devices?at=${MAPPED_RW}`);
    expect(a.headers.etag).toMatch(/^W\/"/);
    // Between the two maps only the domain changed: same tree, so the client's copy is still good.
    const b = await get(base, `/api/devices?at=${MAPPED_R}`, { 'if-none-match': a.headers.etag as string });
    expect(b.status).toBe(304);
    expect(b.text).toBe('');
    // The VM association changes an owner's VM: a new tag and a full answer.
    const c = await get(base, `/api/devices?at=${MAPPED_R + 1}`, { 'if-none-match': a.headers.etag as string });
    expect(c.status).toBe(200);
    expect(c.headers.etag).not.toBe(a.headers.etag);
    const g = await get(base, `/api/groups?at=${MAPPED_RW}`);
    expect((await get(base, `/api/groups?at=${MAPPED_R}`, { 'if-none-match': g.headers.etag as string })).status).toBe(304);
    // The page's lean tree (no owners, VMs, group sizes) stays the same across the VM association too.
    const t = await get(base, `/api/devices?fields=tree&at=${MAPPED_RW}`);
    expect(t.json.devices.find((d: { id: string }) => d.id === GPU)).toEqual(expect.not.objectContaining({ owner: expect.anything() }));
    expect((await get(base, `/api/devices?fields=tree&at=${MAPPED_R + 1}`, { 'if-none-match': t.headers.etag as string })).status).toBe(304);
    expect((await get(base, '/api/devices?fields=nope')).status).toBe(400);
    // Other large answers carry a hash of their body.
    const log = await get(base, '/api/log?limit=50');
    expect((await get(base, '/api/log?limit=50', { 'if-none-match': log.headers.etag as string })).status).toBe(304);
  });

  test('GET /api/device/:id: details, membership and peers; 404 for unknown or not-yet-added devices', async () => {
    const r = (await get(base, `/api/device/${AUDIO}`)).json;
    expect(r).toMatchObject({ device: { id: AUDIO, group: 1 }, peers: [GPU], domain: 'vm1-ioas', domainPath: 'group', membership: expect.stringMatching(/multifunction/) });
    expect(r.reserved).toEqual([{ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' }]);
    const missing = await get(base, '/api/device/0000:ff:00.0');
    expect(missing.status).toBe(404);
    expect(missing.json.error.message).toMatch(/no device/);
    expect((await get(base, `/api/device/${GPU}?at=2`)).status).toBe(404);
    expect((await get(base, `/api/devices/${encodeURIComponent(GPU)}`)).status).toBe(200);
  });

  test('GET /api/domains: user domains with devices, reserved regions and counts; defaults on request', async () => {
    const r = (await get(base, '/api/domains?defaults=0')).json;
    expect(r.domains.map((d: { id: string }) => d.id)).toEqual(['vm1-ioas']);
    expect(r.domains[0]).toMatchObject({
      kind: 'paging',
      ctx: 'qemu-vm1',
      uid: 1000,
      vm: 'vm1',
      mappings: 1,
      devices: [
        { device: GPU, pasid: null, via: 'attached' },
        { device: AUDIO, pasid: null, via: 'group' },
      ],
      reserved: [{ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' }],
    });
    expect(r.hiddenDefaults).toBe(6);
    expect(r.iommus[0]).toMatchObject({ id: 'amd-vi0', pageSizes: '0x40201000', reserved: [{ kind: 'msi' }] });
    const all = (await get(base, '/api/domains')).json;
    expect(all.domains.length).toBe(7);
    expect((await get(base, `/api/domains?defaults=0&at=${MAPPED_R}`)).json.domains[0].mappings).toBe(2);
    expect((await get(base, '/api/domains?defaults=2')).status).toBe(400);
  });

  test('GET /api/domains/:id/mappings pages through mappings with hex addresses; jumps to an IOVA', async () => {
    const p1 = (await get(base, '/api/domains/big/mappings?host=lab&limit=100')).json;
    expect(p1).toMatchObject({ domain: 'big', total: 250, offset: 0, limit: 100 });
    expect(p1.mappings).toHaveLength(100);
    expect(p1.mappings[0]).toEqual({ iova: { start: '0x0', last: '0xfff' }, pa: { start: '0x100000000', last: '0x100000fff' }, size: '0x1000', prot: 'rw', pos: 11 });
    const p3 = (await get(base, '/api/domains/big/mappings?host=lab&offset=200&limit=100')).json;
    expect(p3.mappings).toHaveLength(50);
    expect(p3.mappings[49].iova.start).toBe(`0x${(249 * 0x2000).toString(16)}`);
    const jump = (await get(base, '/api/domains/big/mappings?host=lab&iova=0x3000&limit=2')).json;
    expect(jump.mappings.map((m: { iova: { start: string } }) => m.iova.start)).toEqual(['0x4000', '0x6000']);
    const early = (await get(base, '/api/domains/big/mappings?host=lab&at=20')).json;
    expect(early.total).toBe(10);
    expect((await get(base, '/api/domains/nope/mappings')).status).toBe(404);
    expect((await get(base, '/api/domains/big/mappings?host=lab&limit=0')).status).toBe(400);
    expect((await get(base, '/api/domains/big/mappings?host=lab&limit=5000')).status).toBe(400);
  });
});

describe('questions: can-dma, who-can, explain, audit, plan, log', () => {
  test('GET /api/can-dma: verdict and the explanation chain; denied before the mapping existed', async () => {
    const r = (await get(base, `/api/can-dma?device=${AUDIO}&iova=0x1000&access=w`)).json;
    expect(r).toMatchObject({
      pos: 36,
      query: { device: AUDIO, iova: '0x1000', length: '0x1', access: 'w', pasid: null },
      allowed: true,
      reason: 'mapped',
      group: 1,
      owner: 'qemu-vm1',
      domain: 'vm1-ioas',
      segments: [{ iova: { start: '0x1000', last: '0x1000' }, pa: { start: '0x100001000', last: '0x100001000' }, pos: MAPPED_RW }],
      summary: expect.stringMatching(/allowed, mapped/),
    });
    const chain = r.chain.map((s: { pos: number }) => s.pos);
    expect(chain).toEqual(expect.arrayContaining([BOUND, MAPPED_RW]));
    expect(r.chain.find((s: { pos: number }) => s.pos === BOUND)).toMatchObject({ type: 'DeviceBound', actor: { uid: 1000, comm: 'qemu-system-x86' }, sentence: expect.stringMatching(/bound 0000:0a:00\.0/) });
    const before = (await get(base, `/api/can-dma?device=${AUDIO}&iova=0x1000&access=w&at=${BOUND + 1}`)).json;
    expect(before).toMatchObject({ pos: BOUND + 1, allowed: false, reason: 'blocked' });
    const readonly = (await get(base, `/api/can-dma?device=${GPU}&iova=0x100000000&access=w&at=${MAPPED_R}`)).json;
    expect(readonly).toMatchObject({ allowed: false, reason: 'permission', fault: { reason: 'MAPPING' } });
    const unmapped = (await get(base, `/api/can-dma?device=${GPU}&iova=0x100000000&access=r`)).json;
    expect(unmapped).toMatchObject({ allowed: false, reason: 'unmapped' });
    expect((await get(base, `/api/can-dma?device=${GPU}&iova=0x100000000&access=r&at=${UNMAPPED - 1}`)).json.allowed).toBe(true);
  });

  test('can-dma parameters are validated: 400 naming the parameter', async () => {
    const cases: [string, RegExp][] = [
      [`device=${GPU}&access=w`, /^iova is required/],
      [`device=${GPU}&iova=0x1000&access=x`, /^access: expected r or w/],
      [`device=${GPU}&iova=-1&access=r`, /^iova: must not be negative/],
      [`device=${GPU}&iova=0x10000000000000000&access=r`, /^iova: .* does not fit/],
      [`device=${GPU}&iova=0xffffffffffffffff&length=2&access=r`, /^length: the range overflows/],
      [`device=${GPU}&iova=0x0&length=0&access=r`, /^length: must not be 0/],
      [`device=nonsense%20id&iova=0x0&access=r`, /^device: /],
      [`device=${GPU}&iova=0x0&access=r&pasid=99999999`, /^pasid: /],
    ];
    for (const [q, msg] of cases) {
      const r = await get(base, `/api/can-dma?${q}`);
      expect({ q, status: r.status }).toEqual({ q, status: 400 });
      expect(r.json.error.message).toMatch(msg);
      noStack(r.text);
    }
  });

  test('GET /api/who-can: every device that can reach a physical address', async () => {
    const r = (await get(base, '/api/who-can?pa=0x100001000&access=w')).json;
    expect(r).toMatchObject({ pa: '0x100001000', length: '0x1', total: 2 });
    expect(r.reachers.map((x: { device: string }) => x.device).sort()).toEqual([GPU, AUDIO]);
    expect(r.reachers.find((x: { device: string }) => x.device === AUDIO)).toMatchObject({ reason: 'mapped', viaGroup: true, iova: { start: '0x1000' } });
    expect((await get(base, `/api/who-can?pa=0x100001000&access=w&at=${BOUND}`)).json.total).toBe(0);
    const lab2 = (await get(base, '/api/who-can?host=lab&pa=0x5&access=r')).json;
    expect(lab2.reachers).toEqual([expect.objectContaining({ device: 'platform-dma0', reason: 'no-iommu' })]);
  });

  test('GET /api/explain: group membership without an address, a verdict with one', async () => {
    const m = (await get(base, `/api/explain?device=${AUDIO}`)).json;
    expect(m).toMatchObject({ device: AUDIO, group: 1, membership: expect.stringMatching(/multifunction/) });
    expect(m.chain.map((s: { type: string }) => s.type)).toEqual(expect.arrayContaining(['DeviceAdded', 'DeviceBound']));
    const v = (await get(base, `/api/explain?device=${AUDIO}&iova=0x1000&access=w`)).json;
    expect(v).toMatchObject({ allowed: true, reason: 'mapped', chain: expect.any(Array) });
  });

  test('GET /api/audit: entries touching a device, group, ctx or uid, as sentences, with limit and time window', async () => {
    const dev = (await get(base, `/api/audit?device=${GPU}`)).json;
    expect(dev.total).toBe(dev.rows.length);
    expect(dev.rows.map((r: { pos: number }) => r.pos)).toEqual(expect.arrayContaining([BOUND, MAPPED_RW - 1]));
    expect(dev.rows.every((r: { sentence: string }) => typeof r.sentence === 'string' && r.sentence.length > 0)).toBe(true);
    const limited = (await get(base, `/api/audit?device=${GPU}&limit=2`)).json;
    expect(limited).toMatchObject({ total: dev.total, truncated: true });
    expect(limited.rows.map((r: { pos: number }) => r.pos)).toEqual(dev.rows.slice(-2).map((r: { pos: number }) => r.pos));
    const uid = (await get(base, '/api/audit?uid=1001')).json;
    expect(uid.rows.map((r: { type: string; refused: boolean }) => [r.type, r.refused])).toEqual([
      ['ContextOpened', false],
      ['CommandRejected', true],
    ]);
    const group = (await get(base, '/api/audit?group=1')).json;
    expect(group.rows.some((r: { type: string }) => r.type === 'CommandRejected')).toBe(true);
    const ctx = (await get(base, `/api/audit?ctx=qemu-vm1&at=${MAPPED_RW}`)).json;
    expect(ctx.rows[ctx.rows.length - 1].pos).toBe(MAPPED_RW);
    const since = local.timeOf(34)!;
    const windowed = (await get(base, `/api/audit?since=${encodeURIComponent(since)}`)).json;
    expect(windowed.rows.map((r: { pos: number }) => r.pos)).toEqual([34, 35, 36]);
    expect((await get(base, '/api/audit?group=x')).status).toBe(400);
    expect((await get(base, '/api/audit?since=notatime')).status).toBe(400);
  });

  test('GET /api/plan: the claim set and commands, as of any position', async () => {
    const p = (await get(base, `/api/plan?device=${NIC}`)).json;
    expect(p).toMatchObject({ device: NIC, group: 4, viable: false, possible: true });
    expect(p.commands.slice(0, 2)).toEqual([
      { type: 'driver.unbind', device: NIC },
      { type: 'driver.bind', device: NIC, driver: 'vfio-pci' },
    ]);
    const early = (await get(base, `/api/plan?device=${NIC}&at=13`)).json;
    expect(early.commands[0]).toEqual({ type: 'driver.bind', device: NIC, driver: 'vfio-pci' });
    expect((await get(base, '/api/plan')).status).toBe(400);
  });

  test('GET /api/log: entries with sentences by range; text filter; problems only', async () => {
    const r = (await get(base, '/api/log?from=20&to=25')).json;
    expect(r.entries.map((e: { pos: number }) => e.pos)).toEqual([20, 21, 22, 23, 24, 25]);
    expect(r.entries[2]).toMatchObject({ type: 'CommandRejected', refused: true, sentence: expect.stringMatching(/^refused device\.bind by uid 1000/) });
    const last = (await get(base, '/api/log?limit=3')).json;
    expect(last.entries.map((e: { pos: number }) => e.pos)).toEqual([34, 35, 36]);
    const problems = (await get(base, '/api/log?only=problems')).json;
    expect(problems.entries.map((e: { pos: number; type: string }) => `${e.pos}:${e.type}`)).toEqual(['22:CommandRejected', '32:DmaChecked', '33:FaultRecorded', '35:CommandRejected']);
    const text = (await get(base, '/api/log?q=snd_hda')).json;
    expect(text.entries.map((e: { pos: number }) => e.pos)).toEqual([16, 22, 23]);
    expect((await get(base, '/api/log?q=snd_hda&to=22')).json.entries.map((e: { pos: number }) => e.pos)).toEqual([16, 22]);
    expect((await get(base, '/api/log?only=everything')).status).toBe(400);
    // Sentences read as they did at the time: the map names the ctx that owned the domain.
    expect((await get(base, `/api/log?from=${MAPPED_RW}&to=${MAPPED_RW}`)).json.entries[0].sentence).toMatch(/^ctx qemu-vm1 \(uid 1000\) mapped/);
  });
});

describe('server-sent events', () => {
  test('headers, retry, and a resume with Last-Event-ID replays exactly the missed entries', async () => {
    const s = sse(base, '/api/events', { 'last-event-id': '30' });
    expect(await s.status).toBe(200);
    const h = await s.headers;
    expect(h['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(h['cache-control']).toBe('no-cache, no-transform');
    expect(h['content-encoding']).toBeUndefined();
    await s.until(() => s.events.length >= 6);
    expect(s.fields).toContain('retry: 2000');
    expect(s.events.map((e) => e.id)).toEqual(['31', '32', '33', '34', '35', '36']);
    expect(s.events[4]!.json).toMatchObject({ pos: 35, type: 'CommandRejected', refused: true, sentence: expect.stringMatching(/^refused device\.bind/), host: 'local', at: local.timeOf(35) });
    // A heartbeat comment arrives while nothing happens.
    await s.until(() => s.comments.some((c) => c.startsWith('ping')), 3000);
    s.close();
  });

  test('live: entries appended by another writer arrive; reconnecting resumes without loss or duplicates', async () => {
    const start = lab.state.pos;
    const first = sse(base, `/api/events?host=lab&after=${start}`);
    const seen: string[] = [];
    await first.status;
    await lab.exec({ type: 'ctx.open', ctx: 'sse-a', kind: 'iommufd', actor: { uid: 7 } });
    await lab.exec({ type: 'ctx.open', ctx: 'sse-b', kind: 'iommufd', actor: { uid: 7 } });
    await first.until(() => first.events.length >= 2);
    seen.push(...first.events.map((e) => e.id!));
    first.close();
    // While disconnected: more entries, some through the API.
    await lab.exec({ type: 'ctx.open', ctx: 'sse-c', kind: 'iommufd', actor: { uid: 7 } });
    const posted = await http(base, 'POST', '/api/commands?host=lab', {
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify([{ type: 'ctx.open', ctx: 'sse-d', kind: 'iommufd' }, { type: 'ctx.close', ctx: 'nope' }]),
    });
    expect(posted.status).toBe(200);
    const second = sse(base, `/api/events?host=lab&after=${start}`, { 'last-event-id': seen[seen.length - 1]! });
    await second.until(() => second.events.length >= 3);
    await lab.exec({ type: 'ctx.open', ctx: 'sse-e', kind: 'iommufd', actor: { uid: 7 } });
    await second.until(() => second.events.length >= 4);
    seen.push(...second.events.map((e) => e.id!));
    second.close();
    const expected = Array.from({ length: 6 }, (_, i) => String(start + 1 + i));
    expect(seen).toEqual(expected);
    expect(second.events.map((e) => e.json.type)).toEqual(['ContextOpened', 'ContextOpened', 'CommandRejected', 'ContextOpened']);
  });

  test('a resume point that is not a position is a 400 JSON error', async () => {
    const r = await get(base, '/api/events', { 'last-event-id': 'abc' });
    expect(r.status).toBe(400);
    expect(r.json.error.message).toMatch(/Last-Event-ID/);
    expect((await http(base, 'POST', '/api/events')).status).toBe(405);
  });
});

describe('commands: token, body limit', () => {
  const post = (body: string, headers: Record<string, string> = {}, host = 'local') => http(base, 'POST', `/api/commands?host=${host}`, { headers: { 'content-type': 'application/json', ...headers }, body });

  test('without the right bearer token: 403 with a JSON error, nothing appended', async () => {
    const before = local.state.pos;
    const cmd = JSON.stringify({ type: 'ctx.open', ctx: 'x', kind: 'iommufd' });
    for (const auth of [undefined, 'Bearer wrong-token', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`, TOKEN]) {
      const r = await post(cmd, auth ? { authorization: auth } : {});
      expect({ auth, status: r.status }).toEqual({ auth, status: 403 });
      expect(r.json.error).toEqual({ status: 403, message: expect.stringMatching(/Authorization: Bearer/) });
    }
    expect((await get(base, '/api/state')).json.pos).toBe(before);
  });

  test('with the token: one command or an array, results like exec; refusals reported per line', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const one = await post(JSON.stringify({ type: 'ctx.open', ctx: 'api1', kind: 'iommufd', actor: { uid: 1002 } }), auth, 'lab');
    expect(one.status).toBe(200);
    expect(one.json).toMatchObject({ host: 'lab', ok: true, results: [{ line: 1, ok: true, events: ['ContextOpened'] }] });
    const many = await post(JSON.stringify([{ type: 'ctx.close', ctx: 'api1', actor: { uid: 1002 } }, { type: 'device.bind', device: '0000:00:02.0', ctx: 'api1', actor: { uid: 1002 } }]), auth, 'lab');
    expect(many.json.ok).toBe(false);
    expect(many.json.results[0]).toMatchObject({ line: 1, ok: true, events: ['ContextClosed'] });
    expect(many.json.results[1]).toMatchObject({ line: 2, ok: false, status: expect.stringMatching(/^E/), message: expect.any(String) });
    // A new host can be written through the API.
    const fresh = await post(JSON.stringify({ type: 'iommu.add', iommu: 'x0', personality: 'linux', pageSizes: '0x1000' }), auth, 'newhost');
    expect(fresh.json).toMatchObject({ host: 'newhost', ok: true, pos: 1 });
    expect((await get(base, '/api/hosts')).json.hosts.map((h: { host: string }) => h.host)).toEqual(['lab', 'local', 'newhost']);
  });

  test('malformed bodies: 400 malformed JSON, 415 not JSON, 400 empty array', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const bad = await post('{"type": ', auth);
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/^malformed JSON/);
    const text = await http(base, 'POST', '/api/commands', { headers: { ...auth, 'content-type': 'text/plain' }, body: '{}' });
    expect(text.status).toBe(415);
    expect((await post('[]', auth)).status).toBe(400);
  });

  test('a body over 1 MiB is a 413 (declared length, and chunked)', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const big = JSON.stringify({ type: 'ctx.open', ctx: 'x', kind: 'iommufd', pad: 'x'.repeat(1024 * 1024) });
    const r = await post(big, auth);
    expect(r.status).toBe(413);
    expect(r.json.error).toEqual({ status: 413, message: expect.stringMatching(/over the limit of 1048576 bytes/) });
    const chunked = await new Promise<number>((resolve, reject) => {
      const u = new URL(base);
      const req = httpRequest({ host: u.hostname, port: u.port, method: 'POST', path: '/api/commands', headers: { ...auth, 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      for (let i = 0; i < 20; i++) req.write('x'.repeat(100_000));
      req.end();
    });
    expect(chunked).toBe(413);
  });
});

describe('static files and errors', () => {
  test('the page, its script, style and vendor modules with the right content types; CSP allows only the import map inline', async () => {
    const page = await get(base, '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.text).toContain('<script type="importmap">');
    expect(page.headers['content-security-policy']).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    const types: [string, string][] = [
      ['/app.js', 'text/javascript; charset=utf-8'],
      ['/whatif.js', 'text/javascript; charset=utf-8'],
      ['/style.css', 'text/css; charset=utf-8'],
      ['/index.html', 'text/html; charset=utf-8'],
      ['/vendor/preact.mjs', 'text/javascript; charset=utf-8'],
      ['/vendor/preact-hooks.mjs', 'text/javascript; charset=utf-8'],
      ['/vendor/htm.mjs', 'text/javascript; charset=utf-8'],
    ];
    for (const [path, type] of types) {
      const r = await get(base, path);
      expect({ path, status: r.status, type: r.headers['content-type'] }).toEqual({ path, status: 200, type });
    }
  });

  test('no path traversal: dot segments, encoded dots and slashes, dot files, unknown vendor files are 404s', async () => {
    const paths = [
      '/../package.json',
      '/../../package.json',
      '/%2e%2e/package.json',
      '/%2E%2E/%2e%2e/package.json',
      '/..%2fpackage.json',
      '/..%2f..%2f..%2fpackage.json',
      '/%2e%2e%2f%2e%2e%2fpackage.json',
      '/..%5c..%5cpackage.json',
      '/static/../../../package.json',
      '/vendor/../package.json',
      '/vendor/preact/package.json',
      '/vendor/%2e%2e/%2e%2e/package.json',
      '/.git/config',
      '/%2egit/config',
      '/app.js%00.html',
    ];
    for (const p of paths) {
      const r = await get(base, p);
      expect({ p, status: r.status }).toEqual({ p, status: expect.any(Number) });
      expect([400, 404]).toContain(r.status);
      expect(r.json.error.status).toBe(r.status);
      expect(r.text).not.toContain('"devDependencies"');
      expect(r.text).not.toContain('[core]');
    }
  });

  test('errors are JSON without stack traces: unknown route, wrong method, malformed encoding', async () => {
    const r404 = await get(base, '/api/nothing-here');
    expect(r404.status).toBe(404);
    expect(r404.json).toEqual({ error: { status: 404, message: 'no API route /api/nothing-here' } });
    const r405 = await http(base, 'POST', '/api/state');
    expect(r405.status).toBe(405);
    expect(r405.headers.allow).toBe('GET');
    expect(r405.json.error.status).toBe(405);
    const r400 = await get(base, '/api/device/%E0%A4%A');
    expect(r400.status).toBe(400);
    for (const r of [r404, r405, r400]) noStack(r.text);
  });

  test('a request naming another Host (DNS rebinding) is refused', async () => {
    const r = await get(base, '/api/hosts', { host: 'evil.example:80' });
    expect(r.status).toBe(403);
    expect(r.json.error.message).toMatch(/DNS rebinding/);
    expect((await get(base, '/api/hosts', { host: `localhost:${srv.port}` })).status).toBe(200);
  });
});

describe('server options', () => {
  test('read-only without a token: POST /api/commands is a 403 that says how to enable it', async () => {
    const ro = await createServer({ store, port: 0 });
    try {
      const r = await http(ro.url, 'POST', '/api/commands', { headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{}' });
      expect(r.status).toBe(403);
      expect(r.json.error.message).toMatch(/read-only: start it with --token/);
      expect((await get(ro.url, '/api/hosts')).json.writable).toBe(false);
    } finally {
      await ro.close();
    }
  });

  test('a non-loopback bind address is refused unless bindAny', async () => {
    await expect(createServer({ store, port: 0, bind: '0.0.0.0' })).rejects.toMatchObject({ code: 'ENOTLOOPBACK', message: expect.stringMatching(/--bind-any/) });
    const any = await createServer({ store, port: 0, bind: '0.0.0.0', bindAny: true });
    try {
      // No Host check then: the server is meant to be reached by name.
      expect((await get(`http://127.0.0.1:${any.port}/`, '/api/hosts', { host: 'dashboard.example' })).status).toBe(200);
    } finally {
      await any.close();
    }
  });

  test('an internal failure is a 500 with a generic message; the stack goes to the server log only', async () => {
    const broken: EventStore = { ...store, streams: async () => Promise.reject(new Error('secret detail\n    at somewhere (/x/y.ts:1:1)')) };
    const lines: string[] = [];
    const b = await createServer({ store: broken, port: 0, log: (l) => void lines.push(l) });
    try {
      const r = await get(b.url, '/api/hosts');
      expect(r.status).toBe(500);
      expect(r.json).toEqual({ error: { status: 500, message: 'internal error (see the server log)' } });
      expect(r.text).not.toContain('secret');
      expect(lines.join('\n')).toContain('secret detail');
    } finally {
      await b.close();
    }
  });
});

describe('what-if (issue 15)', () => {
  test('GET /api/what-if?rules=R: the CLI what-if --json shape plus host and pos; a bad rule set is a 400', async () => {
    const r = await get(base, '/api/what-if?rules=linux-acs-rework-v3&kernel=6.17.0');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ host: 'local', pos: 36, to: { rules: 'linux-acs-rework-v3', kernel: '6.17.0' } });
    expect((r.json.changes as { kind: string; from: number[] }[]).find((c) => c.kind === 'split')).toMatchObject({ from: [1] });
    const bad = await get(base, '/api/what-if?rules=nope');
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ status: 400, message: expect.stringMatching(/^rules: expected one of linux-classic/) });
  });
});
