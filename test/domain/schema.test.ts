/**
 * One schema per command and event: failures carry a structured issue (literal code, path list,
 * message) next to the message the CLI prints, and `isogroup schema` publishes a JSON Schema that
 * the commands and events the engine writes satisfy.
 */
import { describe, expect, test } from '@jest/globals';
import Compile from 'typebox/compile';
import { COMMAND_TYPES, EVENT_TYPES, FieldError, parseCommand, safeParseCommand, schemaDocument, validateEvent } from '../../domain/index.js';
import { cli } from '../cli/run.js';

const fail = (f: () => unknown): FieldError => {
  try {
    f();
  } catch (err) {
    if (err instanceof FieldError) return err;
    throw err;
  }
  throw new Error('accepted');
};

describe('issues', () => {
  test.each<[string, unknown, FieldError['issue'], string]>([
    ['bad hex', { type: 'map', domain: 'd', iova: 'zz', length: '1', pa: '0', prot: 'rw' }, { code: 'invalid_format', path: ['iova'], message: 'expected a hex ("0x1000") or decimal string, got "zz"' }, 'iova: expected a hex ("0x1000") or decimal string, got "zz"'],
    ['an unknown type', { type: 'nope' }, { code: 'invalid_value', path: ['type'], message: 'unknown command type "nope"' }, 'type: unknown command type "nope"'],
    ['an array', [], { code: 'invalid_type', path: ['command'], message: 'expected a JSON object, got an array' }, 'command: expected a JSON object, got an array'],
    ['a nested field', { type: 'iommu.add', iommu: 'x', reserved: [{ start: '0x0', last: '0xfff', kind: 'hole' }] }, { code: 'invalid_value', path: ['reserved', 0, 'kind'], message: 'expected one of direct, direct-relaxable, reserved, msi, sw-msi, got the string "hole"' }, 'reserved[0].kind: expected one of direct, direct-relaxable, reserved, msi, sw-msi, got the string "hole"'],
    ['a deeper field', { type: 'device.add', device: '0000:01:00.0', pci: { kind: 'endpoint', acs: { cap: 'XX' } } }, { code: 'invalid_value', path: ['pci', 'acs', 'cap'], message: 'unknown ACS bit "XX" (known: SV,TB,RR,CR,UF,EC,DT,ENHANCED)' }, 'pci.acs.cap: unknown ACS bit "XX" (known: SV,TB,RR,CR,UF,EC,DT,ENHANCED)'],
    ['the actor', { type: 'ctx.close', ctx: 'c', actor: { uid: -1 } }, { code: 'too_small', path: ['actor', 'uid'], message: 'expected an integer from 0 to 2147483647, got number -1' }, 'actor.uid: expected an integer from 0 to 2147483647, got number -1'],
  ])('%s: the issue, and the message as printed', (_name, input, issue, message) => {
    const err = fail(() => parseCommand(input));
    expect(err.issue).toEqual(issue);
    expect(err.message).toBe(message);
    expect(safeParseCommand(input)).toEqual({ success: false, issue });
  });

  test('safeParseCommand returns the command with its defaults', () => {
    expect(safeParseCommand({ type: 'dma', device: '0000:01:00.0', iova: '0x1000', access: 'r' })).toEqual({
      success: true,
      data: { actor: { uid: 0 }, type: 'dma', device: '0000:01:00.0', iova: 0x1000n, length: 1n, access: 'r', pasid: null },
    });
  });

  test('observed events: the path starts with data', () => {
    const err = fail(() => validateEvent('Unmapped', { domain: 'd', areas: [{ iova: '0x0', last: 'x', pa: '0x0' }] }));
    expect(err.issue).toEqual({ code: 'invalid_format', path: ['data', 'areas', 0, 'last'], message: 'expected a hex ("0x1000") or decimal string, got "x"' });
    expect(err.message).toBe('data.areas[0].last: expected a hex ("0x1000") or decimal string, got "x"');
  });

  test('observed events: defaults filled in, unknown fields kept, lenient forms accepted', () => {
    expect(validateEvent('DeviceAttached', { device: 'a', domain: 'd', extra: 1 }).data).toEqual({ pasid: null, device: 'a', domain: 'd', extra: 1 });
    expect(validateEvent('Mapped', { domain: 'd', iova: ' 0x0001000 ', last: 8191, pa: '4096', prot: 'RW' }).data.iova).toBe(' 0x0001000 ');
  });
});

describe('the published JSON Schema', () => {
  const doc = schemaDocument();
  const check = (def: string): ((v: unknown) => boolean) => {
    const v = Compile({ ...doc, anyOf: undefined, $ref: `#/$defs/${def}` } as never);
    return (x) => v.Check(x);
  };

  test('names every command and every event', () => {
    const defs = Object.keys(doc.$defs as object);
    for (const t of COMMAND_TYPES) expect(defs).toContain(`command:${t}`);
    for (const t of EVENT_TYPES) expect(defs).toContain(`event:${t}`);
  });

  test('accepts the commands the parser accepts and the events the engine writes', () => {
    const command = check('command');
    const event = check('event');
    const commands = [
      { type: 'iommu.add', iommu: 'i0', pageSizes: '0x40201000', reserved: [{ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' }] },
      { type: 'device.add', device: '0000:01:00.0', pci: { kind: 'endpoint', acs: { cap: 'SV,RR', ctl: '' } }, iommu: 'i0' },
      { type: 'map', domain: 'd', iova: '0x1000', length: 4096, pa: '0x2000', prot: 'rw+mmio', actor: { uid: 1000 } },
      { type: 'dma', device: '0000:01:00.0', iova: '0x1000', access: 'w' },
    ];
    for (const c of commands) {
      parseCommand(c);
      expect(command(c)).toBe(true);
    }
    expect(command({ type: 'map', domain: 'd' })).toBe(false);
    const events = [
      { type: 'Mapped', data: { domain: 'd', iova: '0x1000', last: '0x1fff', pa: '0x2000', prot: 'rw' } },
      { type: 'Unmapped', data: { domain: 'd', areas: [{ iova: '0x1000', last: '0x1fff', pa: '0x2000' }] } },
      { type: 'DmaChecked', data: { device: 'a', iova: '0x0', length: '0x1', access: 'r', pasid: null, allowed: false, reason: 'no domain', domain: null } },
    ];
    for (const e of events) {
      validateEvent(e.type, e.data);
      expect(event(e)).toBe(true);
    }
    expect(event({ type: 'Mapped', data: { domain: 'd', iova: 'zz' } })).toBe(false);
  });

  test('isogroup schema prints it', async () => {
    const r = await cli(['schema']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(JSON.parse(JSON.stringify(doc)));
    const j = await cli(['--json', 'schema']);
    expect(j.json()).toHaveLength(1);
  });
});
