/**
 * Host-critical marks as facts of the log: the command's rules, a mark changes nothing but the
 * mark (groups, verdicts, alerts stay what they were), the decide path and a replay agree, a
 * snapshot carries it, and logs written before marks existed replay and answer what-if as before.
 */
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { canDmaAt, evolveAll, initialState, parseCommand, type State } from '../../domain/index.js';
import { groupsJson, groupsView, whatIf, whatIfLines } from '../../projections/index.js';
import { decodeState, encodeState, encodeStateJson } from '../../src/snapshot/codec.js';
import { newHost } from '../helpers.js';

/** The fixtures refuse some commands on purpose: every command runs, refusals are logged. */
const hostWith = (cmds: readonly Record<string, unknown>[]) => {
  const h = newHost();
  for (const c of cmds) h.exec(c);
  return h;
};

const FIX = join(import.meta.dirname, '..', 'fixtures');
const commands = (file: string): Record<string, unknown>[] =>
  readFileSync(join(FIX, file), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const GPU = '0000:0a:00.0';
const withoutMarks = (s: State): unknown => {
  const v = groupsJson(groupsView(s)) as { groups: { members: Record<string, unknown>[] }[] };
  return { ...v, groups: v.groups.map((g) => ({ ...g, members: g.members.map(({ critical: _c, ...m }) => m) })) };
};

describe('device.critical', () => {
  test('the command: a known role on a present device, root only; clearing a role the device lacks is refused', () => {
    expect(() => parseCommand({ type: 'device.critical', device: GPU, role: 'favourite' })).toThrow(/role/);
    const h = hostWith(commands('desktop-gpu-passthrough.jsonl'));
    expect(h.exec({ type: 'device.critical', device: '0000:7f:00.0', role: 'boot-vga' })).toMatchObject({ ok: false, status: 'ENODEV' });
    expect(h.exec({ type: 'device.critical', device: GPU, role: 'boot-vga', actor: { uid: 1000 } })).toMatchObject({ ok: false, status: 'EACCES' });
    expect(h.exec({ type: 'device.critical', device: GPU, role: 'console', clear: true })).toMatchObject({ ok: false, status: 'ENOENT' });
    expect(h.exec({ type: 'device.critical', device: GPU, role: 'boot-vga', detail: 'boot_vga = 1' })).toMatchObject({ ok: true, events: ['CriticalMarked'] });
    // Marked again: the mark is replaced (one per role), a second role adds one.
    h.exec({ type: 'device.critical', device: GPU, role: 'boot-vga', detail: 'efifb' });
    h.exec({ type: 'device.critical', device: GPU, role: 'console' });
    expect(h.state.devices.get(GPU)?.critical?.map((m) => `${m.role}:${m.detail}`)).toEqual(['boot-vga:efifb', 'console:null']);
    expect(h.exec({ type: 'device.critical', device: GPU, role: 'boot-vga', clear: true })).toMatchObject({ ok: true, events: ['CriticalCleared'] });
    expect(h.state.devices.get(GPU)?.critical?.map((m) => m.role)).toEqual(['console']);
  });

  test('a mark changes nothing but the mark: the same groups, verdicts and alerts', () => {
    const cmds = commands('desktop-gpu-passthrough.jsonl');
    const plain = hostWith(cmds);
    const marked = hostWith([...cmds.slice(0, 6), { type: 'device.critical', device: GPU, role: 'boot-vga' }, ...cmds.slice(6)]);
    expect(withoutMarks(marked.state)).toEqual(withoutMarks(plain.state));
    expect(marked.state.alerts.map((a) => a.message)).toEqual(plain.state.alerts.map((a) => a.message));
    for (const iova of [0n, 0x1000n, 0x80000000n]) {
      const q = { device: GPU, iova, access: 'w' as const, pasid: null };
      // (log positions shift by the one mark entry; the answer does not)
      const answer = (st: State) => {
        const v = canDmaAt(st, q);
        return { allowed: v.allowed, reason: v.reason, domain: v.domain, pa: v.segments.map((x) => x.pa) };
      };
      expect(answer(marked.state)).toEqual(answer(plain.state));
    }
  });

  test('the decide path and a replay of its log agree, and a snapshot carries the marks', () => {
    const cmds = commands('desktop-gpu-passthrough.jsonl');
    const h = hostWith([...cmds, { type: 'device.critical', device: GPU, role: 'boot-vga' }, { type: 'device.critical', device: '0000:0a:00.1', role: 'console' }, { type: 'device.critical', device: '0000:0a:00.1', role: 'console', clear: true }]);
    const replayed = evolveAll(initialState(), h.log);
    expect(encodeStateJson(replayed).toString()).toBe(encodeStateJson(h.state).toString());
    expect(decodeState(encodeState(h.state)).devices.get(GPU)?.critical).toEqual(h.state.devices.get(GPU)?.critical);
  });

  test('logs written before marks existed: no device carries one, and what-if says nothing about them', () => {
    for (const file of ['desktop-gpu-passthrough.jsonl', 'desktop-gpu-passthrough-bars.jsonl', 'desktop-gpu-reset.jsonl']) {
      const h = hostWith(commands(file));
      const s = evolveAll(initialState(), h.log);
      expect([...s.devices.values()].filter((d) => 'critical' in d)).toEqual([]);
      for (const rules of ['linux-acs-rework-v2', 'linux-acs-rework-v3']) {
        const w = whatIf(s, rules);
        expect(w.critical).toEqual([]);
        expect(whatIfLines(w).join('\n')).not.toMatch(/host-critical|newly share|boot GPU|root storage/);
      }
    }
  });
});
