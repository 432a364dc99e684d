/**
 * Resets through the CLI and the dashboard API: commands, `reset-scope`, time travel (`--at`),
 * `bisect`, `audit`, `explain` and `plan` over a log holding a reset, and the server's reset routes.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { openStore } from '../../src/store/open.js';
import type { EventStore } from '../../src/store/types.js';
import { get } from '../server/helpers.js';
import { cli, tempDir } from './run.js';

const GPU = '0000:01:00.0';
const AUDIO = '0000:01:00.1';

const SETUP = [
  { type: 'host.boot', kernel: '7.0.0' },
  { type: 'iommu.add', iommu: 'dmar0' },
  { type: 'device.add', device: 'pci0000:00', parent: null, iommu: 'dmar0', pci: { kind: 'host-bridge' } },
  { type: 'device.add', device: '0000:00:01.0', parent: 'pci0000:00', pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } } },
  { type: 'device.add', device: GPU, parent: '0000:00:01.0', name: 'GPU' },
  { type: 'device.add', device: AUDIO, parent: '0000:00:01.0', name: 'GPU audio' },
  { type: 'driver.bind', device: GPU, driver: 'vfio-pci' },
  { type: 'driver.bind', device: AUDIO, driver: 'vfio-pci' },
  { type: 'device.reset-caps', device: AUDIO, flr: false },
  { type: 'ctx.open', ctx: 'vm1' },
  { type: 'group.claim', group: GPU, ctx: 'vm1' },
  { type: 'domain.alloc', domain: 'ioas', ctx: 'vm1', iommu: 'dmar0' },
  { type: 'device.attach', device: GPU, domain: 'ioas' },
  { type: 'map', domain: 'ioas', iova: '0x0', length: '0x1000', pa: '0x40000000', prot: 'rw' },
];
const MAPPED = SETUP.length; // position of the map
const lines = (xs: readonly object[]): string => `${xs.map((x) => JSON.stringify(x)).join('\n')}\n`;

let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  dir = tempDir();
  env = { ISOGROUP_STORE: `file:${join(dir, 'log.jsonl')}` };
  expect((await cli(['exec', '-'], { stdin: lines(SETUP), env })).code).toBe(0);
  // A held bus reset of the audio function (pos MAPPED+1), a refused re-attach of the GPU, then the end.
  const during = await cli(['exec', '-'], { stdin: lines([{ type: 'device.reset', device: AUDIO, method: 'bus', hold: true }, { type: 'device.attach', device: GPU, domain: 'ioas' }]), env });
  expect(during.json().map((r) => r.status ?? 'ok')).toEqual(['ok', 'EBUSY']);
  expect((await cli(['exec', '-'], { stdin: lines([{ type: 'device.reset-done', device: AUDIO }]), env })).code).toBe(0);
});

describe('resets on the command line', () => {
  test('reset-scope names the devices, drivers and owners a reset touches', async () => {
    const r = await cli(['--json', 'reset-scope', '--device', AUDIO, '--method', 'bus'], { env });
    expect(r.code).toBe(0);
    const x = r.json()[0]!;
    expect(x).toMatchObject({ method: 'bus', possible: true, blocking: true, kernel: '7.0.0' });
    expect((x.devices as { device: string; driver: string; owner: string }[]).map((d) => [d.device, d.driver, d.owner])).toEqual([
      [AUDIO, 'vfio-pci', 'vm1'],
      [GPU, 'vfio-pci', 'vm1'],
    ]);
    const text = await cli(['reset-scope', '--device', AUDIO], { env });
    expect(text.code).toBe(1);
    expect(text.stdout).toContain('cannot be reset');
  });

  test('a bad --method is one clear line and exit 2', async () => {
    const r = await cli(['reset-scope', '--device', AUDIO, '--method', 'warm'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('isogroup: --method: expected one of auto, flr, pm, slot, bus, cxl, got "warm"\n');
  });

  test('can-dma time-travels into and out of the reset window', async () => {
    const q = ['--json', 'can-dma', '--device', GPU, '--iova', '0x0', '--access', 'w'];
    expect((await cli([...q, '--at', String(MAPPED)], { env })).json()[0]!.reason).toBe('mapped');
    expect((await cli([...q, '--at', String(MAPPED + 2)], { env })).json()[0]!.reason).toBe('resetting');
    expect((await cli(q, { env })).json()[0]!.reason).toBe('mapped');
  });

  test('bisect finds the end of the reset as the entry that made the write possible again', async () => {
    const r = await cli(['--json', 'bisect', '--device', GPU, '--iova', '0x0', '--access', 'w'], { env });
    const x = r.json()[0]!;
    expect(x).toMatchObject({ allowed: true, reason: 'mapped', before: { allowed: false, reason: 'resetting' } });
    expect((x.entry as { type: string }).type).toBe('ResetDone');
  });

  test('audit and explain tell the reset story', async () => {
    const a = await cli(['audit', '--device', GPU], { env });
    expect(a.stdout).toContain(`a bus reset of ${AUDIO} started; it also resets ${GPU}`);
    expect(a.stdout).toContain('inside a bus reset');
    expect(a.stdout).toContain(`the reset of ${AUDIO} finished`);
    const x = await cli(['explain', '--device', GPU, '--iova', '0x0', '--access', 'w', '--at', String(MAPPED + 2)], { env });
    expect(x.stdout).toContain('fenced on its group\'s blocking domain during a reset');
    expect(x.stdout).toContain(`a bus reset of ${AUDIO} started`);
  });

  test('plan includes the reset scope once reset capabilities are known', async () => {
    const p = (await cli(['--json', 'plan', '--device', GPU], { env })).json()[0]!;
    expect(p.reset).toMatchObject({ device: GPU, method: null, possible: false });
    const t = await cli(['plan', '--device', GPU], { env });
    expect(t.stdout).toContain('reset (the VMM resets the device when the VM starts and stops)');
  });
});

describe('resets in the dashboard API', () => {
  let store: EventStore;
  let srv: DashboardServer;
  beforeAll(async () => {
    store = await openStore(env.ISOGROUP_STORE!);
    srv = await createServer({ store, port: 0 });
  });
  afterAll(async () => {
    await srv?.close();
    await store?.close();
  });

  test('/api/resets lists the devices in reset at a position', async () => {
    const during = await get(srv.url, `/api/resets?at=${MAPPED + 2}`);
    expect(during.status).toBe(200);
    expect(during.json.resets).toEqual([expect.objectContaining({ device: AUDIO, method: 'bus', devices: [AUDIO, GPU], failed: false })]);
    expect(during.json.devices.map((d: { device: string }) => d.device)).toEqual([AUDIO, GPU]);
    expect((await get(srv.url, '/api/resets')).json.resets).toEqual([]);
  });

  test('/api/reset-scope answers a scope and refuses a bad method', async () => {
    const r = await get(srv.url, `/api/reset-scope?device=${AUDIO}&method=bus`);
    expect(r.json).toMatchObject({ method: 'bus', possible: true });
    const bad = await get(srv.url, `/api/reset-scope?device=${AUDIO}&method=warm`);
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toContain('method: expected one of');
  });
});
