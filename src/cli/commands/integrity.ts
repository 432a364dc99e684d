/** `check --integrity` (the hash chain, optionally against a seal) and `seal` (docs/stores.md#integrity). */
import { readFile, writeFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { streamOfHost } from '../../store/types.js';
import { verifyChain, type IntegrityReport } from '../../store/chain.js';
import {
  DEFAULT_SEAL_KEY,
  chainEntries,
  knownHeadOf,
  loadPrivateKey,
  loadPublicKey,
  makeSeal,
  newSealKey,
  openSeal,
  type Seal,
} from '../../store/integrity.js';
import type { CliContext } from '../context.js';
import { archiveFileLog, moveSegments } from '../../store/archive.js';
import { checkFileChainAcrossGaps } from '../../store/segment-chain.js';
import { filePath } from '../../store/open.js';
import { CliError } from '../io.js';
import type { App } from '../app.js';

const at = (ctx: CliContext, file: string): string => (isAbsolute(file) ? file : resolve(ctx.io.cwd, file));

const readSeal = async (ctx: CliContext, file: string, key?: string): Promise<Seal> => {
  let text: string;
  try {
    text = await readFile(at(ctx, file), 'utf8');
  } catch (error) {
    throw new CliError(`--seal: cannot read ${file}: ${(error as Error).message}`);
  }
  const seal = openSeal(text, file, key === undefined ? undefined : await loadPublicKey(at(ctx, key)));
  if (seal.host !== ctx.host) throw new CliError(`--seal: ${file} seals host ${seal.host}, not ${ctx.host} (use --host ${seal.host})`);
  return seal;
};

/** `isogroup check --integrity [--seal FILE [--key FILE]]`: exit 0 intact, 1 broken. */
export const checkIntegrity = async (ctx: CliContext, o: { seal?: string; key?: string }): Promise<number> => {
  const seal = o.seal === undefined ? undefined : await readSeal(ctx, o.seal, o.key);
  const known = seal ? knownHeadOf(seal) : undefined;
  // Archive segments moved to a disk that is not there: check what can be read, name what cannot.
  const gaps = ctx.storeUrl.startsWith('file:') ? await checkFileChainAcrossGaps(at(ctx, filePath(ctx.storeUrl)), streamOfHost(ctx.host), known) : undefined;
  const r: IntegrityReport = gaps ?? verifyChain(await chainEntries(ctx.storeUrl, streamOfHost(ctx.host), () => ctx.store()), known);
  const unverified = gaps?.unverified ?? [];
  const sealInGap = seal !== undefined && unverified.some((u) => seal.pos >= u.from && seal.pos <= u.to);
  const sealed = seal ? { seal: { pos: seal.pos, at: seal.at, head: seal.head, verified: r.ok && !sealInGap } } : {};
  const gapped = gaps ? { complete: unverified.length === 0, unverified } : {};
  if (ctx.json) {
    ctx.emit({ ok: r.ok, host: ctx.host, entries: r.entries, unchained: r.unchained, head: r.head, ...sealed, ...gapped, ...(r.break ? { break: r.break } : {}) });
  } else if (r.break) {
    ctx.out(`${ctx.paint.red(`#${r.break.pos} ${r.break.kind}`)}: ${r.break.message}\n`);
  } else {
    const prefix = r.unchained > 0 ? `; unchained up to ${r.unchained} (written before the hash chain: not vouched for)` : '';
    const sealNote = !seal ? '' : sealInGap ? `; the seal at #${seal.pos} falls in a part NOT checked` : `; contains the prefix sealed at #${seal.pos} (${seal.at}) unchanged`;
    const gapNote = unverified.map((u) => `; entries ${u.from}–${u.to} NOT checked (archive segment ${u.path} cannot be read: ${u.reason}), the chain resumes from the head the manifest recorded at #${u.to}`).join('');
    ctx.out(`ok: ${r.entries} entries, hash chain intact${gapNote ? ' where it could be read' : ''}${prefix}${gapNote}${sealNote}; head ${r.head}\n`);
  }
  return r.ok ? 0 : 1;
};

export const registerIntegrity = (program: Command, app: App): void => {
  program
    .command('seal')
    .option('--key <file>', `Ed25519 private key (PEM) to sign with (default ${DEFAULT_SEAL_KEY})`)
    .option('--out <file>', 'where the seal goes, - for stdout (default -)')
    .option('--new-key <file>', 'make a key pair instead: FILE (private, mode 0600) and FILE.pub')
    .description('sign a statement of the host, position, time and chain head; keep it elsewhere, then `check --integrity --seal FILE`')
    .action(
      app.action(async (ctx, o: { key?: string; out?: string; newKey?: string }) => {
        if (o.newKey !== undefined) {
          const made = await newSealKey(at(ctx, o.newKey));
          if (ctx.json) ctx.emit({ privateKey: o.newKey, publicKey: `${o.newKey}.pub` });
          else ctx.out(`wrote ${o.newKey} (private, mode 0600) and ${o.newKey}.pub\n`);
          void made;
          return 0;
        }
        const key = await loadPrivateKey(at(ctx, o.key ?? DEFAULT_SEAL_KEY));
        const stream = streamOfHost(ctx.host);
        const entries = await chainEntries(ctx.storeUrl, stream, () => ctx.store());
        const r = verifyChain(entries);
        if (r.break) throw new CliError(`not sealing a broken chain: #${r.break.pos} ${r.break.kind}: ${r.break.message}`);
        const seal = makeSeal(key, { host: ctx.host, stream, pos: r.entries, head: r.head, at: new Date().toISOString() });
        const text = `${JSON.stringify(seal)}\n`;
        if (o.out === undefined || o.out === '-') ctx.out(text);
        else {
          await writeFile(at(ctx, o.out), text);
          if (ctx.json) ctx.emit({ sealed: o.out, host: ctx.host, pos: seal.pos, head: seal.head, at: seal.at });
          else ctx.out(`sealed host ${ctx.host} at #${seal.pos} (head ${seal.head}) into ${o.out}\n`);
        }
        return 0;
      }),
    );

  program
    .command('archive')
    .option('--keep <n>', 'entries to leave in the live log (rounded up to whole appends)', '0')
    .option('--key <file>', 'also seal every stream at the end of the new segment with this Ed25519 key (seals go beside the segments: ship them elsewhere)')
    .option('--to <dir>', 'instead: move the closed segments into DIR (an archive disk); the manifest records where each went')
    .description('move the live file log, verified, into a compressed archive segment beside it; reads and checks see one log')
    .addHelpText(
      'after',
      `
The archived lines keep their hash chain: \`check --integrity\` walks segments and live log as one,
and replay, --at and every query read through the segments. Seal before archiving and keep the
seal elsewhere: a segment replaced later is then caught like any other edit.

Examples:
  $ isogroup seal --out before-archive.seal && isogroup archive
  $ isogroup archive --keep 1000 --key .isogroup/seal-key.pem --json
  $ isogroup archive --to /mnt/archive/host1          # closed segments onto another disk

A writer rolls by itself when ISOGROUP_SEGMENT_BYTES is set (e.g. 64M): each time an append leaves
the live log larger, it becomes a closed segment (sealed with ISOGROUP_SEGMENT_KEY when set).`,
    )
    .action(
      app.action(async (ctx, o: { keep: string; key?: string; to?: string }) => {
        if (!ctx.storeUrl.startsWith('file:')) throw new CliError(`archive: only file: stores have archive segments (this store is ${ctx.storeUrl.split(':')[0]})`);
        if (!/^\d{1,12}$/.test(o.keep)) throw new CliError(`--keep: expected a number of entries, got ${JSON.stringify(o.keep.slice(0, 40))}`);
        const file = at(ctx, filePath(ctx.storeUrl));
        if (o.to !== undefined) {
          if (o.to === '') throw new CliError('--to: expected a directory');
          const m = await moveSegments(file, at(ctx, o.to));
          if (ctx.json) ctx.emit({ moved: m.moved, to: m.dir });
          else ctx.out(m.moved.length ? `moved ${m.moved.join(', ')} to ${o.to}\n` : `nothing to move: no closed segment outside ${o.to}\n`);
          return 0;
        }
        const key = o.key === undefined ? undefined : await loadPrivateKey(at(ctx, o.key));
        const r = await archiveFileLog(file, { keep: Number(o.keep), ...(key ? { key } : {}) });
        const s = r.segment;
        const seals = r.seals ?? [];
        if (ctx.json) ctx.emit({ archived: s ? s.lines : 0, ...(s ? { segment: s.file, firstLine: s.firstLine, lastLine: s.firstLine + s.lines - 1, sha256: s.sha256, heads: s.heads } : {}), liveLines: r.liveLines, ...(key ? { seals } : {}) });
        else if (!s) ctx.out(`nothing to archive: ${r.liveLines} line(s) in the live log\n`);
        else ctx.out(`archived lines ${s.firstLine}–${s.firstLine + s.lines - 1} into ${s.file}; ${r.liveLines} line(s) stay in the live log${seals.length ? `; sealed ${seals.join(', ')}` : ''}\n`);
        return 0;
      }),
    );
};
