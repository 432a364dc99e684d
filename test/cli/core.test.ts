import { describe, expect, test } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir } from './run.js';

const example = readFileSync(new URL('../fixtures/desktop-gpu-passthrough.jsonl', import.meta.url), 'utf8');

describe('isogroup exec / import / export / groups / replay / check on the embedded file store', () => {
  test('exec prints one result per line, exit 1 when a line is refused, and the log keeps every entry', async () => {
    const dir = tempDir();
    const store = `file:${join(dir, 'log.jsonl')}`;
    const r = await cli(['--store', store, 'exec', '-'], { stdin: example });
    expect(r.code).toBe(1);
    const results = r.json<{ line: number; ok: boolean; status?: string; pos: number[]; events?: string[] }>();
    expect(results).toHaveLength(29);
    expect(results[20]).toMatchObject({ line: 21, ok: false, status: 'EPERM' });
    expect(results[0]).toMatchObject({ line: 1, ok: true, pos: [1], events: ['IommuAdded'] });
    expect(results.filter((x) => !x.ok)).toHaveLength(1);
    const exported = await cli(['--store', store, 'export']);
    const lines = exported.json<{ pos: number; type: string }>();
    expect(lines.map((l) => l.pos)).toEqual(lines.map((_, i) => i + 1));
    expect(lines.find((l) => l.type === 'CommandRejected')).toBeDefined();
  });

  test('exec exits 0 when everything is accepted and 2 when the input cannot be read', async () => {
    const dir = tempDir();
    const store = `file:${join(dir, 'log.jsonl')}`;
    const ok = await cli(['--store', store, 'exec', '-'], { stdin: '{"type":"iommu.add","iommu":"i0"}\n\n' });
    expect(ok.code).toBe(0);
    const missing = await cli(['--store', store, 'exec', join(dir, 'nope.jsonl')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/nope\.jsonl: cannot read \(ENOENT\)/);
    expect(missing.stderr).not.toMatch(/at .*\.js/); // no stack trace
  });

  test('bad lines are refused naming the line and field; what came before stays in the log', async () => {
    const dir = tempDir();
    const store = `file:${join(dir, 'log.jsonl')}`;
    const input = ['{"type":"iommu.add","iommu":"i0"}', '{"type":"map","domain":"d","iova":"0xZZ","length":"0x1000","pa":"0x0","prot":"rw"}', 'not json', '{"type":"frobnicate"}', '{"type":"device.add","device":"0000:00:01.0","parent":"pci0000:00"}'].join('\n');
    const r = await cli(['--store', store, 'exec', '-'], { stdin: input });
    expect(r.code).toBe(1);
    const res = r.json<{ line: number; ok: boolean; status?: string; message?: string }>();
    expect(res[0]).toMatchObject({ line: 1, ok: true });
    expect(res[1]).toMatchObject({ line: 2, ok: false, status: 'EINVAL' });
    expect(res[1]!.message).toMatch(/line 2: iova/);
    expect(res[2]).toMatchObject({ line: 3, ok: false, status: 'EINVAL' });
    // A line that is not JSON is refused with the parser's own reason, nothing more.
    expect(res[2]!.message).toMatch(/^line 3: not JSON: Unexpected token/);
    expect(res[3]!.message).toMatch(/type: unknown command type "frobnicate"/);
    expect(res[4]).toMatchObject({ ok: false, status: 'ENODEV' });
    expect(res[4]!.message).toMatch(/parent: unknown device pci0000:00/);
    const log = (await cli(['--store', store, 'export'])).json<{ type: string; data: { message?: string } }>();
    expect(log[0]!.type).toBe('IommuAdded');
    const rejected = log.filter((e) => e.type === 'CommandRejected');
    expect(rejected).toHaveLength(4);
    // The log records the same reason the user read, without the line number.
    expect(rejected[1]!.data.message).toBe(res[2]!.message!.replace(/^line 3: /, ''));
  });

  test('groups --json has the documented shape; --at travels back in time', async () => {
    const dir = tempDir();
    const store = `file:${join(dir, 'log.jsonl')}`;
    await cli(['--store', store, 'exec', '-'], { stdin: example });
    const now = (await cli(['--store', store, '--json', 'groups'])).json<{ groups: { id: number; members: { device: string; reason: unknown }[]; viable: boolean; blockers: unknown[]; owner: string | null; domain: string }[]; groupless: string[] }>()[0]!;
    const gpu = now.groups.find((g) => g.members.some((m) => m.device === '0000:0a:00.0'))!;
    expect(gpu).toMatchObject({ viable: true, blockers: [], owner: 'qemu-vm1', domain: 'vm1-ioas' });
    expect(gpu.members[1]).toMatchObject({ device: '0000:0a:00.1', reason: { kind: 'multifunction', via: '0000:0a:00.0' } });
    const nic = now.groups.find((g) => g.members.some((m) => m.device === '0000:04:00.0'))!;
    expect(nic).toMatchObject({ viable: false, blockers: [{ device: '0000:04:00.0', driver: 'r8169' }] });
    // Before the audio function was rebound (line 22 = entry 22 is the refusal), the GPU group was not viable.
    const before = (await cli(['--store', store, '--json', 'groups', '--at', '21'])).json<typeof now>()[0]!;
    const gpuThen = before.groups.find((g) => g.members.some((m) => m.device === '0000:0a:00.0'))!;
    expect(gpuThen).toMatchObject({ viable: false, owner: null, blockers: [{ device: '0000:0a:00.1', driver: 'snd_hda_intel' }] });
    const human = await cli(['--store', store, 'groups']);
    expect(human.stdout).toMatch(/group \d+ +owned by qemu-vm1 \(VM vm1\) via device\.bind/);
    expect(human.stdout).toMatch(/not viable: 0000:04:00\.0 uses r8169/);
  });

  test('export | import into another store gives the same replayed state', async () => {
    const dir = tempDir();
    const a = `file:${join(dir, 'a.jsonl')}`;
    const b = `file:${join(dir, 'b.jsonl')}`;
    await cli(['--store', a, 'exec', '-'], { stdin: example });
    const exported = await cli(['--store', a, 'export']);
    const imp = await cli(['--store', b, 'import', '-'], { stdin: exported.stdout });
    expect(imp.code).toBe(0);
    const ga = (await cli(['--store', a, '--json', 'groups'])).stdout;
    const gb = (await cli(['--store', b, '--json', 'groups'])).stdout;
    expect(gb).toBe(ga);
    const ra = (await cli(['--store', a, '--json', 'replay'])).json<{ devices: number; mappings: number }>()[0]!;
    const rb = (await cli(['--store', b, '--json', 'replay'])).json<{ devices: number; mappings: number }>()[0]!;
    expect(rb).toMatchObject({ devices: ra.devices, mappings: ra.mappings });
  });

  test('import is all or nothing and names the bad line; check reports alerts from observed rule breaks', async () => {
    const dir = tempDir();
    const store = `file:${join(dir, 'log.jsonl')}`;
    const events = [
      { type: 'IommuAdded', data: { iommu: 'i0', personality: 'linux' }, meta: { at: '2026-11-21T10:00:00Z' } },
      { type: 'DeviceAdded', data: { device: '0000:00:02.0', bus: 'pci', pci: { kind: 'rc-endpoint' }, iommu: 'i0' }, meta: { at: '2026-11-21T10:00:01Z' } },
      { type: 'ContextOpened', data: { ctx: 'c1', kind: 'iommufd', uid: 1000 }, meta: { at: '2026-11-21T10:00:02Z' } },
      { type: 'DeviceBound', data: { device: '0000:00:02.0', ctx: 'c1', group: 0 }, meta: { at: '2026-11-21T10:00:03Z' } },
      { type: 'DriverBound', data: { device: '0000:00:02.0', driver: 'i915', managedDma: false }, meta: { at: '2026-11-21T10:00:04Z' } },
    ];
    const text = events.map((e) => JSON.stringify(e)).join('\n');
    const bad = `${text}\n{"type":"Mapped","data":{"domain":"x","iova":"0xnothex"}}`;
    const refused = await cli(['--store', store, 'import', '-'], { stdin: bad });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/line 6: data\.iova/);
    const notJson = await cli(['--store', store, 'import', '-'], { stdin: `${text}\n{"type":` });
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toMatch(/^isogroup: line 6: not JSON: .+; nothing was imported\n$/);
    expect((await cli(['--store', store, 'export'])).stdout).toBe('');
    const ok = await cli(['--store', store, 'import', '-'], { stdin: text });
    expect(ok.code).toBe(0);
    const check = await cli(['--store', store, '--json', 'check']);
    expect(check.code).toBe(1);
    const out = check.json<{ alerts: { pos: number; kind: string }[] }>()[0]!;
    expect(out.alerts).toEqual([expect.objectContaining({ pos: 5, kind: 'kernel-driver-in-user-group' })]);
  });

  test('replay --until and --step tell the story; a torn last line is repaired with a warning', async () => {
    const dir = tempDir();
    const path = join(dir, 'log.jsonl');
    await cli(['--store', `file:${path}`, 'exec', '-'], { stdin: example });
    const step = await cli(['--store', `file:${path}`, 'replay', '--until', '5', '--step']);
    expect(step.stdout.split('\n').filter((l) => l.startsWith('#'))).toHaveLength(5);
    expect(step.stdout).toMatch(/#5 .* 0000:0a:00\.1 \(GPU HD audio\) was added under 0000:00:01\.1; 0000:0a:00\.1 joined group \d+ because it is a function of a multifunction device without ACS/);
    expect(step.stdout).toMatch(/host local at #5/);
    writeFileSync(path, readFileSync(path, 'utf8') + '{"pos":31,"id":"x","ty');
    const repaired = await cli(['--store', `file:${path}`, 'exec', '-'], { stdin: '{"type":"ctx.open","ctx":"late"}' });
    expect(repaired.code).toBe(0);
    expect(repaired.stderr).toMatch(/warning: .*line 30/);
    expect(repaired.json<{ pos: number[] }>()[0]!.pos).toEqual([30]);
  });

  test('demo writes the demonstration host and prints groups and an audit; a second demo on the same host is refused', async () => {
    const dir = tempDir();
    const store = `file:${join(dir, 'log.jsonl')}`;
    const r = await cli(['--store', store, 'demo']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/demo host "local"/);
    expect(r.stdout).toMatch(/refused device\.bind by uid 1000 .*EPERM/);
    const again = await cli(['--store', store, 'demo']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already has \d+ log entries/);
    const other = await cli(['--store', store, '--host', 'lab2', 'demo', '--quiet']);
    expect(other.code).toBe(0);
    const hosts = await cli(['--store', store, '--json', 'hosts']);
    expect(hosts.json<{ hosts: { host: string }[] }>()[0]!.hosts.map((h) => h.host)).toEqual(['lab2', 'local']);
  });

  test('--help teaches, unknown commands and bad store URLs fail cleanly', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Examples:/);
    expect(help.stdout).toMatch(/can-dma/);
    // Help speaks of the project only: no section numbers of a document users do not have.
    const commands = [...help.stdout.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    expect(commands).toEqual(expect.arrayContaining(['exec', 'can-dma', 'serve']));
    for (const c of ['', ...commands]) {
      const text = (await cli(c === '' ? ['--help'] : [c, '--help'])).stdout;
      expect([c, /SPEC|§/.test(text)]).toEqual([c, false]);
    }
    const unknown = await cli(['frob']);
    expect(unknown.code).toBe(2);
    const badStore = await cli(['--store', 'ftp://x', 'groups']);
    expect(badStore.code).toBe(2);
    expect(badStore.stderr).toMatch(/unknown store URL/);
    expect(badStore.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('isogroup what-if / groups --rules on the worked example (issue 15)', () => {
  test('what-if under each rule set, text and --json, writes nothing; a bad rule set is a usage error', async () => {
    const dir = tempDir();
    const store = `file:${join(dir, 'log.jsonl')}`;
    await cli(['--store', store, 'exec', '-'], { stdin: example });
    const before = readFileSync(join(dir, 'log.jsonl'), 'utf8');
    const same = await cli(['--store', store, 'what-if', '--rules', 'linux-classic']);
    expect(same.stdout).toMatch(/no group changes; nothing running is affected/);
    const v2 = await cli(['--store', store, '--json', 'what-if', '--rules', 'linux-acs-rework-v2', '--kernel', '6.17.0']);
    expect(v2.code).toBe(0);
    const w = v2.json<{ to: unknown; changes: { kind: string }[]; lostViability: unknown[] }>()[0]!;
    expect(w.to).toEqual({ rules: 'linux-acs-rework-v2', kernel: '6.17.0' });
    expect(w.changes.map((c) => c.kind)).toEqual(['merge']);
    expect(w.lostViability).toEqual([
      { group: 3, newGroup: 3, blockers: [{ device: '0000:04:00.0', driver: 'r8169' }] },
      { group: 5, newGroup: 3, blockers: [{ device: '0000:04:00.0', driver: 'r8169' }] },
    ]);
    const v3 = await cli(['--store', store, 'what-if', '--rules', 'linux-acs-rework-v3']);
    expect(v3.stdout).toMatch(/group 1 splits into groups 1, 2 \(0000:0a:00\.0, 0000:0a:00\.1\)/);
    const groups = await cli(['--store', store, '--json', 'groups', '--rules', 'linux-acs-rework-v3']);
    const g = groups.json<{ groups: { members: { device: string }[] }[]; whatIf: unknown }>()[0]!;
    expect(g.whatIf).toEqual({ rules: 'linux-acs-rework-v3', pos: 29 });
    expect(g.groups.find((x) => x.members.some((m) => m.device === '0000:0a:00.0'))!.members.map((m) => m.device)).toEqual(['0000:0a:00.0']);
    const bad = await cli(['--store', store, 'what-if', '--rules', 'linux-next']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--rules: unknown rule set "linux-next"; one of linux-classic, linux-acs-rework-v2, linux-acs-rework-v3/);
    expect(readFileSync(join(dir, 'log.jsonl'), 'utf8')).toBe(before);
  });
});
