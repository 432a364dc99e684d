/** The README's reset story, run as written: the scope, the EBUSY during the reset, DMA during and after, and the VM reset alert. */
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir } from './run.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const FIXTURE = new URL('../fixtures/desktop-gpu-reset.jsonl', import.meta.url);

/** The expected output under `$ command` in the README's reset story, up to the next blank line. */
const expected = (command: string): string => {
  const at = README.indexOf(`$ ${command}\n`);
  if (at < 0) throw new Error(`README has no "$ ${command}"`);
  const rest = README.slice(at + command.length + 3);
  return rest.slice(0, rest.search(/\n\n|\n```/)).trimEnd();
};

describe('README reset story', () => {
  test('prints what the README says', async () => {
    const env = { ISOGROUP_STORE: `file:${join(tempDir(), 'log.jsonl')}` };
    const run = await cli(['exec', '-'], { stdin: readFileSync(FIXTURE, 'utf8'), env });
    expect(run.stdout.split('\n').slice(31, 34).join('\n')).toBe(expected("isogroup exec test/fixtures/desktop-gpu-reset.jsonl | sed -n '32,34p'"));
    for (const argv of [
      ['reset-scope', '--device', '0000:0a:00.1'],
      ['reset-scope', '--device', '0000:0a:00.1', '--method', 'bus'],
      ['can-dma', '--device', '0000:0a:00.0', '--iova', '0x1000', '--access', 'w', '--at', '32'],
      ['can-dma', '--device', '0000:0a:00.0', '--iova', '0x1000', '--access', 'w'],
    ]) {
      expect((await cli(argv, { env })).stdout.trimEnd()).toBe(expected(`isogroup ${argv.join(' ')}`));
    }
    const vm = await cli(['exec', '-'], { stdin: '{"type":"vm.reset","ctx":"qemu-vm1","resetDevices":false}\n', env });
    expect(vm.code).toBe(0);
    expect((await cli(['check'], { env })).stdout).toContain('stale mappings, device still mastering: VM vm1 was reset but 0000:0a:00.0 was not');
  });

  test('on a kernel older than 7.0 the attach during the reset is accepted', async () => {
    const env = { ISOGROUP_STORE: `file:${join(tempDir(), 'log.jsonl')}` };
    const old = readFileSync(FIXTURE, 'utf8').replace('"kernel":"7.0.0"', '"kernel":"6.12.9"');
    const run = await cli(['exec', '-'], { stdin: old, env });
    expect(run.json()[32]).toMatchObject({ line: 33, ok: true });
  });
});
