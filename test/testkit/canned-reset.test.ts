/** The reset workstation: each reset scope on the topology built for it, in the test kit's own words. */
import { describe, expect, test } from '@jest/globals';
import { workstation } from '../../src/testkit/index.js';

describe('workstation (canned machine for resets)', () => {
  test('a bus reset of the GPU audio function takes the GPU; the switch takes its drives; the PF its VFs', () => {
    const { host, devices: d } = workstation();
    expect(host.resetScope(d.gpuAudio).method).toBeNull();
    expect(host.resetScope(d.gpuAudio, 'bus').devices.map((m) => m.device)).toEqual([d.gpuAudio, d.gpu]);
    expect(host.resetScope(d.switch, 'bus').devices.map((m) => m.device)).toEqual(expect.arrayContaining([d.nvme0, d.nvme1, d.nvme2]));
    expect(host.resetScope(d.nic).devices.map((m) => m.device)).toEqual([d.nic, d.vf0, d.vf1]);
    expect(host.resetScope(d.nvme1).method).toBe('flr');
  });

  test('the kernel decides the window: 7.0 fences the group, an older one does not', () => {
    for (const [kernel, fenced] of [['7.0.0', true], ['6.18.2', false]] as const) {
      const { host, devices: d } = workstation({ kernel });
      host.rebind(d.gpu, 'vfio-pci').orThrow();
      host.rebind(d.gpuAudio, 'vfio-pci').orThrow();
      host.ctxOpen('vm').orThrow();
      host.groupClaim(d.gpu, 'vm').orThrow();
      host.domainAlloc('ioas', { ctx: 'vm' }).orThrow();
      host.reset(d.gpuAudio, { method: 'bus', hold: true }).orThrow();
      expect([kernel, host.attach(d.gpu, 'ioas').status ?? 'ok']).toEqual([kernel, fenced ? 'EBUSY' : 'ok']);
    }
  });
});
