/** The one DMA-question parser: the CLI and the API differ only in how they spell a field. */
import { describe, expect, test } from '@jest/globals';
import { asksForVerdict, parseDmaQuery, parseQueryAt, parseReachQuery, type QuerySyntax } from '../../src/queries/index.js';

class Bad extends Error {}
const cli: QuerySyntax = { name: (f) => `--${f}`, fail: (m) => new Bad(m) };
const api: QuerySyntax = { name: (f) => f, fail: (m) => new Bad(m) };
const GPU = '0000:0a:00.0';

const messageOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(Bad);
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('parseDmaQuery', () => {
  test('defaults: length 1, no PASID; empty optional values count as absent', () => {
    expect(parseDmaQuery({ device: GPU, iova: '0x1000', access: 'w' }, api)).toEqual({ device: GPU, iova: 0x1000n, length: 1n, access: 'w', pasid: null });
    expect(parseDmaQuery({ device: GPU, iova: '4096', length: '', access: 'r', pasid: '' }, cli)).toEqual({ device: GPU, iova: 0x1000n, length: 1n, access: 'r', pasid: null });
    expect(parseDmaQuery({ device: GPU, iova: '0x0', length: '0x10', access: 'r', pasid: '1048575' }, api)).toMatchObject({ length: 16n, pasid: 0xfffff });
  });

  test.each([
    [{ device: GPU, access: 'w' }, 'iova is required'],
    [{ device: GPU, iova: '0x0', access: 'x' }, 'access: expected r or w, got "x"'],
    [{ device: GPU, iova: '0x0', access: 'read' }, 'access: expected r or w, got "read"'],
    [{ device: GPU, iova: '0x0', length: '0', access: 'r' }, 'length: must not be 0'],
    [{ device: GPU, iova: '0xffffffffffffffff', length: '2', access: 'r' }, 'length: the range overflows 2^64'],
    [{ device: GPU, iova: '0x0', access: 'r', pasid: '1048576' }, 'pasid: expected an integer from 0 to 1048575, got "1048576"'],
    [{ device: GPU, iova: '0x0', access: 'r', pasid: '00000001' }, 'pasid: expected an integer from 0 to 1048575, got "00000001"'],
  ])('%j is refused the same way by both front ends', (text, message) => {
    expect(messageOf(() => parseDmaQuery(text, api))).toBe(message);
    expect(messageOf(() => parseDmaQuery(text, cli))).toBe(`--${message}`);
  });

  test('domain parse errors name the field as the front end spells it', () => {
    expect(messageOf(() => parseDmaQuery({ device: 'nonsense id', iova: '0x0', access: 'r' }, cli))).toMatch(/^--device: /);
    expect(messageOf(() => parseDmaQuery({ device: GPU, iova: '-1', access: 'r' }, api))).toMatch(/^iova: must not be negative/);
  });

  test('explain: any DMA field makes it a verdict question (a stray one is refused, not ignored)', () => {
    expect(asksForVerdict({ device: GPU })).toBe(false);
    expect(asksForVerdict({ device: GPU, iova: '' })).toBe(false);
    expect(asksForVerdict({ device: GPU, pasid: '1' })).toBe(true);
    expect(messageOf(() => parseDmaQuery({ device: GPU, access: 'w' }, cli))).toBe('--iova is required');
  });

  test('a long bad value is cut short in the message', () => {
    expect(messageOf(() => parseDmaQuery({ device: GPU, iova: '0x0', access: 'w'.repeat(1000) }, api)).length).toBeLessThan(60);
  });
});

describe('parseReachQuery and parseQueryAt', () => {
  test('who-can: the same length rules over pa', () => {
    expect(parseReachQuery({ pa: '0x100001000', access: 'w' }, cli)).toEqual({ pa: 0x100001000n, length: 1n, access: 'w' });
    expect(messageOf(() => parseReachQuery({ pa: '0x0', length: '0', access: 'w' }, cli))).toBe('--length: must not be 0');
  });

  test('at: a position, an ISO time or live; anything else is refused', () => {
    expect(parseQueryAt(undefined, api)).toBeUndefined();
    expect(parseQueryAt('live', cli)).toBeUndefined();
    expect(parseQueryAt('42', cli)).toBe(42);
    expect(parseQueryAt('2026-11-21T10:00:00Z', api)).toBe('2026-11-21T10:00:00.000Z');
    expect(messageOf(() => parseQueryAt('March 7', cli, 'until'))).toMatch(/^--until: "March 7" is neither a log position/);
    expect(messageOf(() => parseQueryAt('1234567890123456', api))).toMatch(/^at: /);
  });
});
