/**
 * The published JSON Schema (2020-12) of every command and every event envelope, built from the
 * same schemas the parsers use; `isogroup schema` prints it.
 */
import type { TSchema } from 'typebox';
import { Type, resolve } from './typebox.js';
import { COMMAND_BASE, COMMAND_SCHEMAS, COMMAND_TYPES } from '../commands.js';
import { EVENT_SCHEMAS, EVENT_TYPES } from '../events.js';

const ref = (name: string): TSchema => ({ $ref: `#/$defs/${name}` }) as TSchema;

/** The JSON Schema document: a line of `exec` input is one of `commands`, a log entry's type/data one of `events`. */
export const schemaDocument = (): Record<string, unknown> => {
  const defs: Record<string, TSchema> = {};
  for (const t of COMMAND_TYPES) {
    const s = COMMAND_SCHEMAS[t];
    defs[`command:${t}`] = Type.Object(
      { type: Type.Literal(t), actor: COMMAND_BASE.actor.json, id: COMMAND_BASE.id.json, ...Object.fromEntries(Object.entries(s.fields).map(([k, f]) => [k, f.json])) },
      { title: `${t} command` },
    );
  }
  for (const t of EVENT_TYPES) {
    defs[`event:${t}`] = Type.Object({ type: Type.Literal(t), data: EVENT_SCHEMAS[t].json }, { title: `${t} event (type and data of a log entry)` });
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'isogroup commands and events',
    description:
      'Commands are the lines `isogroup exec` reads; events are the type and data of the log entries `export` writes and `import` reads. 64-bit values are hex ("0x1000") or decimal strings; absent keys take the default shown.',
    $defs: {
      command: { oneOf: COMMAND_TYPES.map((t) => ref(`command:${t}`)) },
      event: { oneOf: EVENT_TYPES.map((t) => ref(`event:${t}`)) },
      ...resolve(defs),
    },
    anyOf: [ref('command'), ref('event')],
  };
};
