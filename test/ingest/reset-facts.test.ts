/**
 * Reset capabilities and Bus Master Enable read from a verbose lspci dump (a laptop with an AMD
 * Navi 23 GPU and its HD audio function behind a switch): FLR, PM reset, ATS, hotplug slots and
 * BusMaster+/-, and what a reset of the audio function would take down on that host.
 */
import { describe, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSysfs, DESKTOP } from '../fixtures/sysfs/build.js';
import { fileURLToPath } from 'node:url';
import { busMasterOf, resetCapsOf, resetScope } from '../../domain/index.js';
import { ingestLspci, ingestSysfs } from '../../src/ingest/index.js';
import { newHost } from '../helpers.js';

const text = readFileSync(fileURLToPath(new URL('../fixtures/lspci/amd-cezanne-laptop-qp.txt', import.meta.url)), 'utf8');
const GPU = '0000:03:00.0';
const AUDIO = '0000:03:00.1';

describe('lspci reset facts', () => {
  const r = ingestLspci(text, { at: '2026-11-21T10:00:00.000Z' });
  const h = newHost();
  h.observe(r.events as never);

  test('every function with a visible capability list gets its reset capabilities, after the topology events', () => {
    const caps = r.events.filter((e) => e.type === 'ResetCapsSet');
    expect(caps.length).toBeGreaterThan(10);
    const firstCaps = r.events.findIndex((e) => e.type === 'ResetCapsSet');
    expect(r.events.slice(firstCaps).every((e) => e.type === 'ResetCapsSet' || e.type === 'BusMasterSet')).toBe(true);
    const gpu = caps.find((e) => e.data.device === GPU)!.data;
    expect(gpu).toMatchObject({ flr: false });
    expect(resetCapsOf(h.state, GPU).flr).toBe(false);
  });

  test('Control: BusMaster+/- becomes Bus Master Enable', () => {
    const bm = r.events.filter((e) => e.type === 'BusMasterSet');
    expect(bm.length).toBeGreaterThan(10);
    for (const e of bm) expect(busMasterOf(h.state, String(e.data.device))).toBe(e.data.enabled);
  });

  test('the GPU audio function has no FLR: the kernel cannot reset it alone, and a bus reset takes the GPU too', () => {
    expect(resetScope(h.state, AUDIO, 'auto').method).toBeNull();
    expect(resetScope(h.state, AUDIO, 'bus').devices.map((m) => m.device)).toEqual([AUDIO, GPU]);
  });
});

describe('sysfs bus mastering', () => {
  test('the Command register of each config image (offset 4, bit 2) becomes Bus Master Enable; no reset capabilities are claimed', () => {
    const root = mkdtempSync(join(tmpdir(), 'isogroup-sysfs-bm-'));
    try {
      buildSysfs(root, DESKTOP);
      const d = DESKTOP.devices[DESKTOP.devices.length - 1]!;
      const file = join(root, 'devices', ...d.above, d.id, 'config');
      const img = readFileSync(file);
      img[4] = img[4]! | 0x4;
      writeFileSync(file, img);
      const r = ingestSysfs(root, { at: '2026-11-21T10:00:00.000Z' });
      const bm = r.events.filter((e) => e.type === 'BusMasterSet');
      expect(bm.find((e) => e.data.device === d.id)?.data.enabled).toBe(true);
      expect(bm.filter((e) => e.data.device !== d.id).every((e) => e.data.enabled === false)).toBe(true);
      expect(r.events.some((e) => e.type === 'ResetCapsSet')).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
