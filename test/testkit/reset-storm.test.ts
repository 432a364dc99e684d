/**
 * Seeded storms with resets: the shadow model predicts the reset commands and the 7.0 EBUSY
 * refusals they cause, accepted commands keep every invariant, and the default storm is unchanged.
 */
import { describe, expect, test } from '@jest/globals';
import { createHost, parseMix, storm, stormSteps } from '../../src/testkit/index.js';
import { invariantViolations } from '../domain/invariants.js';

describe('the reset storm', () => {
  const steps = [...stormSteps({ seed: 7, steps: 3000, kernel: '7.0.0', mix: parseMix('resets') })];
  const host = createHost();
  const results = steps.map((s) => host.exec(s.command));

  test('it resets: function and bus resets, held resets, failed ones, VM resets, and EBUSY while fenced', () => {
    const types = new Set(host.log.map((e) => e.type));
    for (const t of ['HostBooted', 'ResetCapsSet', 'ResetStarted', 'ResetDone', 'ResetFailed', 'BusMasterSet', 'VmReset']) expect([t, types.has(t)]).toEqual([t, true]);
    expect(results.some((r, i) => steps[i]!.command.type === 'device.attach' && r.status === 'EBUSY' && /reset of/.test(r.message ?? ''))).toBe(true);
  });

  test('the shadow model predicts nearly every answer, resets included', () => {
    const agree = steps.filter((s, i) => s.expectOk === results[i]!.ok).length;
    expect(agree / steps.length).toBeGreaterThan(0.97);
    const resetSteps = steps.map((s, i) => [s, results[i]!] as const).filter(([s]) => s.category === 'reset');
    expect(resetSteps.length).toBeGreaterThan(100);
    const resetAgree = resetSteps.filter(([s, r]) => s.expectOk === r.ok).length;
    expect(resetAgree / resetSteps.length).toBeGreaterThan(0.95);
  });

  test('accepted commands never break an invariant', () => {
    expect(invariantViolations(host.state)).toEqual([]);
  });

  test('the same seed gives the same commands; the default storm has no reset in it', () => {
    expect([...storm({ seed: 7, steps: 500, kernel: '7.0.0', mix: parseMix('resets') })]).toEqual(steps.slice(0, 500).map((s) => s.command));
    expect([...storm({ seed: 7, steps: 2000 })].filter((c) => /reset|bus-master/.test(c.type))).toEqual([]);
  });
});
