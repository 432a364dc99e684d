/**
 * `isogroup/testkit`: a simulated host for tests of VMMs, device plugins and orchestrators —
 * a fluent topology builder, the commands as methods that return results, canned machines, a
 * seeded hotplug storm and jest matchers. Guide and reference: docs/testkit.md.
 */
export {
  DEFAULT_START,
  addr,
  createHost,
  deterministicIds,
  openHost,
  steppingClock,
  type ActorOptions,
  type Address,
  type DeviceSubject,
  type DmaCheck,
  type DmaInput,
  type DmaQueryInput,
  type DmaResult,
  type Host,
  type HostCommands,
  type HostOptions,
  type HostResult,
  type MapInput,
  type UnmapInput,
  type MmioInput,
} from './host.js';
export type {
  AcsSpec,
  BridgeHandle,
  BusHandle,
  DeviceHandle,
  DeviceOptions,
  EndpointHandle,
  EndpointOptions,
  IommuHandle,
  IommuOptions,
  PlatformOptions,
  PortHandle,
  PortOptions,
  RegionInput,
  SwitchHandle,
  SwitchOptions,
  Topology,
  VfOptions,
} from './topology.js';
export { desktop, laptop, server, vm, type Canned, type DesktopDevice, type LaptopDevice, type ServerDevice, type VmDevice } from './canned.js';
export {
  DEFAULT_MIX,
  MIX_PRESETS,
  STORM_CATEGORIES,
  parseMix,
  storm,
  stormSteps,
  type StormCategory,
  type StormCommand,
  type StormMix,
  type StormOptions,
  type StormStep,
} from './storm.js';
export { createRng, seedOf, type Rng, type Seed } from './prng.js';
export { installMatchers, matchers, type DmaExpectation } from './matchers.js';
export { chainOf, renderChain, type Chain } from './explain.js';
