/** Line-oriented input for exec/import/ingest: FILE or - (stdin), with a per-line size limit. */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { CliError, type Io } from './io.js';

/** Lines longer than this are refused (a 10 MB line is hostile input, not a command). */
export const MAX_LINE_BYTES = 1 << 20;

export const openInput = async (io: Io, file: string): Promise<Readable> => {
  if (file === '-') return io.stdin;
  const path = isAbsolute(file) ? file : resolve(io.cwd, file);
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw new CliError(`${file}: is a directory, expected a file`);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return createReadStream(path);
};

export const readText = async (io: Io, file: string): Promise<string> => {
  const input = await openInput(io, file);
  const chunks: Buffer[] = [];
  try {
    for await (const c of input) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  } catch (err) {
    throw new CliError(`${file}: read failed (${(err as Error).message})`);
  }
  return Buffer.concat(chunks).toString('utf8');
};

/** Yields [lineNumber, text] for non-blank lines. */
export async function* lines(io: Io, file: string): AsyncGenerator<[number, string]> {
  const input = await openInput(io, file);
  const rl = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const line of rl) {
      n++;
      if (line.trim() === '') continue;
      yield [n, line];
    }
  } catch (err) {
    throw new CliError(`${file}: read failed at line ${n + 1} (${(err as Error).message})`);
  }
}
