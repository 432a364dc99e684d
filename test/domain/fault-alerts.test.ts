/**
 * A fault flood is one alert per device, domain, reason and access, counted in place: 10,000
 * identical observed DMA faults leave one `dma-fault` alert with count 10,000 and the first and
 * last positions and times — whether they arrive in one batch, one at a time, or through a decide
 * session applying them in place — while the first fault of a key still reads as it always did.
 * From the CLI: `check` lists the one counted alert, `faults` still explains all 10,000.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { evolveAll, initialState, openSession, type Alert, type EvolveEvent, type State } from '../../domain/index.js';
import { cli, tempDir } from '../cli/run.js';

const at = (i: number): string => new Date(Date.UTC(2026, 11, 5, 3, 12, 8) + i).toISOString();

/** An observed fault at position `pos` (a kernel report, as `follow` and `ingest dmesg` write it). */
const fault = (pos: number, over: Record<string, unknown> = {}): EvolveEvent => ({
  pos,
  type: 'FaultRecorded',
  data: { device: '0000:03:00.0', iova: '0x7f001000', access: 'w', pasid: null, reason: 'MAPPING', flags: [], domain: 'vm1-ioas', ...over },
  meta: { at: at(pos), observed: true },
});

const faults = (from: number, n: number, over: Record<string, unknown> = {}): EvolveEvent[] => Array.from({ length: n }, (_, i) => fault(from + i, over));

const dmaFaults = (s: State): Alert[] => s.alerts.filter((a) => a.kind === 'dma-fault');

describe('a fault flood is one counted alert per device, domain, reason and access', () => {
  const N = 10_000;
  const flood = faults(1, N);

  test('10,000 identical faults in one batch: one alert, counted, first and last kept', () => {
    const s = evolveAll(initialState(), flood);
    expect(s.alerts).toEqual([
      {
        pos: 1,
        at: at(1),
        kind: 'dma-fault',
        device: '0000:03:00.0',
        message: `0000:03:00.0 faulted (MAPPING) on write of 0x7f001000; ${N} faults, the last at #${N} (${at(N)})`,
        count: N,
        lastPos: N,
        lastAt: at(N),
      },
    ]);
  });

  test('the first fault of a key reads as before (no count); the second counts it', () => {
    const one = evolveAll(initialState(), [fault(1)]);
    expect(one.alerts).toEqual([{ pos: 1, at: at(1), kind: 'dma-fault', device: '0000:03:00.0', message: '0000:03:00.0 faulted (MAPPING) on write of 0x7f001000' }]);
    const two = evolveAll(one, [fault(2)]);
    expect(two.alerts[0]).toMatchObject({ count: 2, lastPos: 2 });
    // The earlier state is untouched (time travel reads it as it was).
    expect(one.alerts[0]!.count).toBeUndefined();
  });

  test('one at a time, in batches of any size, or in a decide session: the same alerts', () => {
    const whole = evolveAll(initialState(), flood);
    let single = initialState();
    for (const e of flood.slice(0, 500)) single = evolveAll(single, [e]);
    for (let i = 500; i < N; i += 777) single = evolveAll(single, flood.slice(i, i + 777));
    expect(single.alerts).toEqual(whole.alerts);
    expect([...single.faultAlerts]).toEqual([...whole.faultAlerts]);

    const session = openSession();
    const before = evolveAll(initialState(), flood.slice(0, 10));
    let s: State = session.apply(before, flood.slice(10, 5000));
    for (let i = 5000; i < N; i += 1000) s = session.apply(s, flood.slice(i, i + 1000));
    s = session.publish(s);
    expect(session.inPlace).toBe(N - 10);
    expect(s.alerts).toEqual(whole.alerts);
    expect(before.alerts[0]!.count).toBe(10); // the state the session started from is unchanged
    // Time travel: the state as of the 5,000th fault counted 5,000.
    expect(evolveAll(initialState(), flood.slice(0, 5000)).alerts[0]).toMatchObject({ count: 5000, lastPos: 5000, lastAt: at(5000) });
  });

  test('each key has its own alert: another device, domain, reason or access; unobserved faults raise none', () => {
    const mixed = [
      ...faults(1, 3),
      ...faults(4, 2, { access: 'r' }),
      ...faults(6, 2, { device: '0000:04:00.0' }),
      ...faults(8, 2, { domain: 'vm2-ioas' }),
      ...faults(10, 2, { reason: 'DOMAIN' }),
      ...faults(12, 4),
      { ...fault(16), meta: { at: at(16) } },
    ];
    const s = evolveAll(initialState(), mixed);
    expect(dmaFaults(s).map((a) => [a.pos, a.device, a.count, a.lastPos])).toEqual([
      [1, '0000:03:00.0', 7, 15],
      [4, '0000:03:00.0', 2, 5],
      [6, '0000:04:00.0', 2, 7],
      [8, '0000:03:00.0', 2, 9],
      [10, '0000:03:00.0', 2, 11],
    ]);
  });
});

describe('from the CLI: check lists the counted alert, faults explains every fault', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('10,000 identical AMD-Vi faults after the demo: one alert, and faults counts all of them', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const store = ['--store', `file:${join(dir, 'log.jsonl')}`];
    expect((await cli([...store, 'demo'])).code).toBe(0);
    const before = (await cli([...store, '--json', 'check'])).json<{ alerts: Alert[] }>()[0]!.alerts.length;
    let flood = '';
    for (let i = 0; i < 10_000; i++) flood += `[ 3128.${String(100000 + i).padStart(6, '0')}] vfio-pci 0000:0a:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x000e address=0x7f001000 flags=0x0020]\n`;
    const ingest = await cli([...store, '--json', 'ingest', 'dmesg', '-'], { stdin: flood });
    const { from, to } = ingest.json<{ from: number; to: number }>()[0]!;
    expect(to - from).toBe(9_999);

    const check = await cli([...store, '--json', 'check']);
    expect(check.code).toBe(1);
    const alerts = check.json<{ alerts: Alert[] }>()[0]!.alerts;
    expect(alerts.length).toBe(before + 1);
    expect(alerts.filter((a) => a.kind === 'dma-fault')).toEqual([expect.objectContaining({ pos: from, device: '0000:0a:00.0', count: 10_000, lastPos: to })]);
    const text = await cli([...store, 'check']);
    expect(text.stdout).toMatch(new RegExp(`#${from} dma-fault: 0000:0a:00\\.0 faulted \\(MAPPING\\) on write of 0x7f001000; 10000 faults, the last at #${to} \\(`));

    const report = (await cli([...store, '--json', 'faults'])).json<{ count: number; agrees: boolean; sentence?: string }>();
    expect(report.map((g) => g.count)).toEqual([10_000]);
  });
});
