/**
 * `explain --translated`: an ATS-translated request explained like can-dma and bisect answer it —
 * from the library, the test kit, the command line and the JSON API.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir } from '../cli/run.js';
import { ACS_ON, host, hostBridge, linuxIommu, pci, type Cmd } from '../domain/kit.js';
import { explainSync } from '../../projections/index.js';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { EventStore } from '../../src/store/types.js';
import { get, writer } from '../server/helpers.js';

const RP = '0000:00:01.0';
const USP = '0000:01:00.0';
const DSP1 = '0000:02:01.0';
const DSP2 = '0000:02:02.0';
const GPU = '0000:03:00.0';
const NIC = '0000:04:00.0';
const NIC_BAR0 = 0xf0000000n;

/** Downstream ports with RR and Direct Translated P2P on; the GPU has ATS and belongs to ctx ifd. */
const dsp = { acs: { cap: 'SV,TB,RR,CR,UF,DT', ctl: 'SV,RR,CR,UF,DT' } };
const cmds: Cmd[] = [
  linuxIommu(),
  hostBridge(),
  pci(RP, 'pci0000:00', 'root-port', ACS_ON),
  pci(USP, RP, 'switch-upstream'),
  pci(DSP1, USP, 'switch-downstream', dsp),
  pci(DSP2, USP, 'switch-downstream', dsp),
  pci(GPU, DSP1, 'endpoint'),
  pci(NIC, DSP2, 'endpoint'),
  { type: 'device.mmio', device: NIC, bars: [{ bar: 0, start: '0xf0000000', size: '0x100000' }] },
  { type: 'device.mmio', device: DSP2, windows: [{ kind: 'memory', start: '0xf0000000', last: '0xf01fffff' }] },
  { type: 'device.mmio', device: GPU, bars: [{ bar: 0, start: '0xe0000000', size: '0x1000000' }], ats: true },
  { type: 'driver.bind', device: GPU, driver: 'vfio-pci' },
  { type: 'ctx.open', ctx: 'ifd', kind: 'iommufd' },
  { type: 'device.bind', device: GPU, ctx: 'ifd' },
];

describe('explain of an ATS-translated request', () => {
  test('the library: translated goes straight to the peer through DT; untranslated is redirected', () => {
    const h = host(...cmds);
    const t = explainSync(h.state, h.log, { device: GPU, iova: NIC_BAR0, access: 'w', translated: true });
    expect(t.verdict).toMatchObject({ allowed: true, reason: 'translated-peer-to-peer' });
    expect(t.summary).toMatch(/TRANSLATED PEER-TO-PEER to BAR 0000:04:00\.0:0 via .*ACS DT \(Direct Translated P2P\)/);
    const u = explainSync(h.state, h.log, { device: GPU, iova: NIC_BAR0, access: 'w' });
    expect(u.verdict).toMatchObject({ allowed: false, reason: 'blocked' });
  });

  test('the test kit', async () => {
    const { createHost } = await import('../../src/testkit/index.js');
    const k = createHost();
    for (const c of cmds) k.exec(c);
    expect((await k.explain({ device: GPU, iova: NIC_BAR0, access: 'w', translated: true })).verdict?.reason).toBe('translated-peer-to-peer');
    expect((await k.explain({ device: GPU, iova: NIC_BAR0, access: 'w' })).verdict?.reason).toBe('blocked');
  });

  test('the command line: explain --translated, text and --json', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'host.jsonl'), cmds.map((c) => JSON.stringify(c)).join('\n') + '\n');
    const s = `file:${join(dir, 'log.jsonl')}`;
    expect((await cli(['--store', s, 'exec', join(dir, 'host.jsonl')])).code).toBe(0);
    const q = ['--device', GPU, '--iova', '0xf0000000', '--access', 'w'];
    const text = await cli(['--store', s, 'explain', ...q, '--translated']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ALLOWED: .*TRANSLATED PEER-TO-PEER to BAR 0000:04:00\.0:0/);
    expect(text.stdout).toMatch(/decodes BAR0 0xf0000000-0xf00fffff/);
    const json = await cli(['--store', s, '--json', 'explain', ...q, '--translated']);
    expect(json.json<{ verdict: { reason: string } }>()[0]!.verdict.reason).toBe('translated-peer-to-peer');
    expect((await cli(['--store', s, 'explain', ...q])).stdout).toMatch(/^DENIED: /);
    expect((await cli(['explain', '--help'])).stdout).toMatch(/--translated/);
  });
});

describe('the JSON API', () => {
  let store: EventStore;
  let srv: DashboardServer;
  let base: string;
  beforeAll(async () => {
    store = createMemoryStore();
    const m = writer(store);
    await m.load();
    await m.execMany(cmds);
    srv = await createServer({ store, port: 0, heartbeatMs: 100, log: () => {} });
    base = srv.url;
  });
  afterAll(async () => {
    await srv?.close();
    await store?.close();
  });

  test('translated=true on explain and can-dma; a bad value is a 400 naming it', async () => {
    const q = `device=${GPU}&iova=0xf0000000&access=w`;
    const x = await get(base, `/api/explain?${q}&translated=true`);
    expect(x.status).toBe(200);
    expect(x.json).toMatchObject({ reason: 'translated-peer-to-peer', query: { translated: true }, summary: expect.stringMatching(/TRANSLATED PEER-TO-PEER/) });
    expect((await get(base, `/api/can-dma?${q}&translated=1`)).json).toMatchObject({ reason: 'translated-peer-to-peer' });
    expect((await get(base, `/api/can-dma?${q}`)).json).toMatchObject({ reason: 'blocked' });
    const bad = await get(base, `/api/can-dma?${q}&translated=maybe`);
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.json)).toMatch(/translated: expected true or false/);
  });
});
