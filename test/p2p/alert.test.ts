/**
 * The `peer-to-peer-reach` alert lives in the log's alerts (issue 20): raised when a claim or new
 * BAR/window facts let a user-owned device reach a kernel-owned device's BAR peer-to-peer, so
 * `check`, audit, replay and `--at` see it like every other alert.
 */
import { describe, expect, it, test } from '@jest/globals';
import { createServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { get, writer } from '../server/helpers.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir } from '../cli/run.js';
import { ACS_ON, NO_ACS, host, hostBridge, invariants, linuxIommu, ok, pci, type Cmd } from '../domain/kit.js';
import type { Engine } from '../../src/engine.js';

const RP = '0000:00:01.0';
const USP = '0000:01:00.0';
const DSP1 = '0000:02:01.0';
const DSP2 = '0000:02:02.0';
const GPU = '0000:03:00.0';
const NIC = '0000:04:00.0';

/** A switch with two downstream ports (ACS as given); the NIC behind one is driven by the kernel. */
const hostCmds = (dsp: Cmd): Cmd[] => [
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
  { type: 'driver.bind', device: NIC, driver: 'ixgbe' },
  { type: 'driver.bind', device: GPU, driver: 'vfio-pci' },
  { type: 'ctx.open', ctx: 'ifd', kind: 'iommufd' },
];
const claim: Cmd = { type: 'device.bind', device: GPU, ctx: 'ifd' };

const p2pAlerts = (h: Engine) => h.state.alerts.filter((a) => a.kind === 'peer-to-peer-reach');

describe('the peer-to-peer-reach alert', () => {
  it('claiming a device behind a switch without ACS whose peer is kernel-owned raises it', () => {
    const h = host(...hostCmds(NO_ACS));
    expect(p2pAlerts(h)).toEqual([]);
    const r = ok(h, claim);
    const alerts = p2pAlerts(h);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ pos: r.pos[0], kind: 'peer-to-peer-reach', device: GPU, ctx: 'ifd', group: h.state.devices.get(GPU)!.group! });
    expect(alerts[0]!.message).toMatch(/^0000:03:00\.0 \(group \d+, owned by ctx ifd\) can reach BAR 0000:04:00\.0:0 of 0000:04:00\.0 \(kernel driver ixgbe\) peer-to-peer: downstream port 0000:02:01\.0 has no ACS capability/);
    invariants(h);
  });

  it('with ACS RR on the downstream ports nothing is raised', () => {
    const h = host(...hostCmds(ACS_ON));
    ok(h, claim);
    expect(p2pAlerts(h)).toEqual([]);
  });

  it('a release raises nothing new; a claim after it raises again', () => {
    const h = host(...hostCmds(NO_ACS), claim);
    expect(p2pAlerts(h)).toHaveLength(1);
    ok(h, { type: 'device.unbind', device: GPU });
    expect(p2pAlerts(h)).toHaveLength(1);
    ok(h, claim);
    expect(p2pAlerts(h)).toHaveLength(2);
    invariants(h);
  });

  it('BAR facts that arrive after the claim raise it once; describing them again does not', () => {
    const cmds = hostCmds(NO_ACS).filter((c) => !(c.type === 'device.mmio' && c.device === NIC));
    const h = host(...cmds, claim);
    expect(p2pAlerts(h)).toEqual([]);
    const nicBars: Cmd = { type: 'device.mmio', device: NIC, bars: [{ bar: 0, start: '0xf0000000', size: '0x100000' }] };
    const r = ok(h, nicBars);
    expect(p2pAlerts(h).map((a) => a.pos)).toEqual(r.pos);
    ok(h, nicBars);
    expect(p2pAlerts(h)).toHaveLength(1);
    invariants(h);
  });

  it('a kernel driver bound to the peer after the claim raises it; a managed (vfio) driver does not', () => {
    const cmds = hostCmds(NO_ACS).filter((c) => !(c.type === 'driver.bind' && c.device === NIC));
    const h = host(...cmds, claim);
    expect(p2pAlerts(h)).toEqual([]);
    ok(h, { type: 'driver.bind', device: NIC, driver: 'vfio-pci' });
    expect(p2pAlerts(h)).toEqual([]);
    ok(h, { type: 'driver.unbind', device: NIC });
    const r = ok(h, { type: 'driver.bind', device: NIC, driver: 'ixgbe' });
    expect(p2pAlerts(h).map((a) => [a.pos, a.device])).toEqual([[r.pos[0], GPU]]);
    expect(p2pAlerts(h)[0]!.message).toMatch(/of 0000:04:00\.0 \(kernel driver ixgbe\) peer-to-peer/);
    invariants(h);
  });

  it('turning ACS RR off on the ingress port after the claim raises it; turning it back on raises nothing', () => {
    const h = host(...hostCmds(ACS_ON), claim);
    expect(p2pAlerts(h)).toEqual([]);
    const r = ok(h, { type: 'device.acs', device: DSP1, ctl: 'SV' });
    expect(p2pAlerts(h).map((a) => a.pos)).toEqual(r.pos);
    expect(p2pAlerts(h)[0]!.message).toMatch(/downstream port 0000:02:01\.0 ACS RR \(P2P Request Redirect\) is not enabled/);
    ok(h, { type: 'device.acs', device: DSP1, ctl: 'SV,RR,CR,UF' });
    expect(p2pAlerts(h)).toHaveLength(1);
    invariants(h);
  });

  it('a window that stops holding the BAR ends the reach; one that holds it again raises it again', () => {
    const h = host(...hostCmds(NO_ACS), claim);
    ok(h, { type: 'device.mmio', device: DSP2, windows: [{ kind: 'memory', start: '0xf8000000', last: '0xf8ffffff' }] });
    expect(p2pAlerts(h)).toHaveLength(1);
    ok(h, { type: 'device.mmio', device: DSP2, windows: [{ kind: 'memory', start: '0xf0000000', last: '0xf01fffff' }] });
    expect(p2pAlerts(h)).toHaveLength(2);
  });
});

describe('check, audit and time travel', () => {
  const store = (): string => {
    const dir = tempDir();
    writeFileSync(join(dir, 'host.jsonl'), [...hostCmds(NO_ACS), claim].map((c) => JSON.stringify(c)).join('\n') + '\n');
    return dir;
  };

  test('check exits 1 with the alert (text and --json); --at before the claim is clean', async () => {
    const dir = store();
    const s = `file:${join(dir, 'log.jsonl')}`;
    expect((await cli(['--store', s, 'exec', join(dir, 'host.jsonl')])).code).toBe(0);
    const text = await cli(['--store', s, 'check']);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^#\d+ peer-to-peer-reach: 0000:03:00\.0 \(group \d+, owned by ctx ifd\) can reach BAR 0000:04:00\.0:0/m);
    const json = await cli(['--store', s, '--json', 'check']);
    expect(json.code).toBe(1);
    const out = json.json<{ ok: boolean; alerts: { pos: number; kind: string; device: string; ctx: string }[] }>()[0]!;
    expect(out.ok).toBe(false);
    expect(out.alerts).toEqual([expect.objectContaining({ kind: 'peer-to-peer-reach', device: GPU, ctx: 'ifd' })]);
    const audit = await cli(['--store', s, '--json', 'audit', '--device', GPU]);
    expect(audit.json<{ type: string }>().map((r) => r.type)).toContain('alert:peer-to-peer-reach');
    const at = String(out.alerts[0]!.pos - 1);
    const past = await cli(['--store', s, '--json', 'audit', '--device', GPU, '--at', at]);
    expect(past.json<{ type: string }>().map((r) => r.type)).not.toContain('alert:peer-to-peer-reach');
    expect((await cli(['--store', s, '--json', 'p2p', '--at', at])).json<{ alerts: unknown[] }>()[0]!.alerts).toEqual([]);
    expect((await cli(['--store', s, '--json', 'p2p'])).json<{ alerts: unknown[] }>()[0]!.alerts).toHaveLength(1);
  });
});

describe('the dashboard', () => {
  test('the log and audit trail the page reads carry the alert on the claiming entry', async () => {
    const store = createMemoryStore();
    const m = writer(store);
    await m.load();
    await m.execMany([...hostCmds(NO_ACS), claim]);
    const srv = await createServer({ store, port: 0, log: () => {} });
    try {
      const log = await get(srv.url, '/api/log?only=problems');
      expect(log.status).toBe(200);
      const rows = (log.json as { entries: { type: string; alerts: { kind: string; message: string }[] }[] }).entries;
      expect(rows.filter((r) => r.alerts.some((a) => a.kind === 'peer-to-peer-reach')).map((r) => r.type)).toEqual(['DeviceBound']);
      const audit = await get(srv.url, `/api/audit?device=${GPU}`);
      expect(JSON.stringify(audit.json)).toMatch(/ALERT peer-to-peer-reach: 0000:03:00\.0 \(group \d+, owned by ctx ifd\) can reach BAR 0000:04:00\.0:0/);
    } finally {
      await srv.close();
      await store.close();
    }
  });
});
