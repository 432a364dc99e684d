/**
 * Which module defines which top-level command, so a run loads only the command it runs: a query
 * (`can-dma`) never loads the server, ingest, follow, the archive or the stores it does not use.
 * Without a known command word (`isogroup`, `--help`, `help …`, an unknown or misspelt command)
 * and for `completion` (which reads every definition), every module is loaded, in this order,
 * which is the order `--help` lists the commands in (`--version` alone loads none). A test keeps `commands` equal to what each
 * module registers.
 */
import type { Command } from 'commander';
import type { App } from './app.js';

type Register = (program: Command, app: App) => void;

export interface CommandModule {
  /** The top-level commands the module registers. */
  readonly commands: readonly string[];
  readonly load: () => Promise<Register>;
}

export const COMMAND_MODULES: readonly CommandModule[] = [
  { commands: ['exec', 'import', 'export', 'groups', 'what-if', 'replay', 'check', 'demo'], load: async () => (await import('./commands/core.js')).registerCore },
  { commands: ['can-dma', 'who-can', 'peers', 'explain', 'faults', 'audit', 'plan', 'diff', 'bisect'], load: async () => (await import('./commands/queries.js')).registerQueries },
  { commands: ['storm'], load: async () => (await import('./commands/storm.js')).registerStorm },
  { commands: ['serve'], load: async () => (await import('./commands/serve.js')).registerServe },
  { commands: ['hosts', 'store'], load: async () => (await import('./commands/extras.js')).registerExtras },
  { commands: ['quirks', 'ingest', 'verify'], load: async () => (await import('./commands/ingest.js')).registerIngest },
  { commands: ['schema'], load: async () => (await import('./commands/schema.js')).registerSchema },
  { commands: ['follow'], load: async () => (await import('./commands/follow.js')).registerFollow },
  { commands: ['completion'], load: async () => (await import('./commands/completion.js')).registerCompletion },
  { commands: ['seal', 'archive'], load: async () => (await import('./commands/integrity.js')).registerIntegrity },
  { commands: ['iommufd'], load: async () => (await import('./commands/iommufd.js')).registerIommufd },
  { commands: ['reset-scope'], load: async () => (await import('./commands/reset.js')).registerReset },
  { commands: ['snapshot'], load: async () => (await import('./commands/snapshot.js')).registerSnapshot },
  { commands: ['p2p'], load: async () => (await import('./commands/p2p.js')).registerP2p },
];

/** Global options that take a value (the word after them is not the command). */
const VALUED = new Set(['--store', '--host', '--snapshot-every', '--segment-size']);

/** The command word of `argv`: the first word that is neither a global option nor its value. */
export const commandWord = (argv: readonly string[]): string | undefined => {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return argv[i + 1];
    if (!a.startsWith('-') || a === '-') return a;
    if (VALUED.has(a)) i++;
  }
  return undefined;
};

/** The modules a run of `argv` needs: the one that defines its command, or all of them. */
export const modulesFor = (argv: readonly string[] | undefined): readonly CommandModule[] => {
  const word = argv && commandWord(argv);
  // `--version` alone prints the version: no command definitions needed.
  if (word === undefined && argv !== undefined && argv.some((a) => a === '--version' || a === '-V') && !argv.some((a) => a === '--help' || a === '-h')) return [];
  if (word === undefined || word === 'completion') return COMMAND_MODULES;
  const one = COMMAND_MODULES.find((m) => m.commands.includes(word));
  return one ? [one] : COMMAND_MODULES;
};
