export { schemaDocument } from './document.js';
export type { Data, Decoded, Field, Shape } from './field.js';
export type { AreaJson, PciJson, RegionJson } from './stored.js';
export { EVENT_SCHEMA_VERSION } from './version.js';
export {
  CURRENT_UPCASTING,
  EVENT_VERSIONS,
  EventVersionError,
  UPCASTERS,
  activeUpcasting,
  currentEvent,
  currentVersion,
  defineUpcasting,
  upcastEvent,
  useUpcasting,
  versionOf,
  type Upcaster,
  type Upcasting,
  type VersionedEvent,
} from './upcast.js';
