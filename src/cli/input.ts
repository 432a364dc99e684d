/** Line-oriented input for exec/import/ingest: FILE or - (stdin), with a per-line size limit. */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
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

/**
 * JSON nested deeper than this is refused before it is parsed: `JSON.parse` copes with any depth,
 * but what comes after it (`JSON.stringify` of a refused command, structured clones) recurses.
 */
export const MAX_JSON_DEPTH = 64;

/** The deepest array/object nesting of a JSON text (strings skipped); cheap, no recursion. */
export const jsonDepth = (text: string): number => {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
};

/** One input line: its text, or why it cannot be used (too long, not UTF-8). Line numbers count blank lines too. */
export type InputLine = { readonly line: number; readonly text: string } | { readonly line: number; readonly problem: string };

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * Non-blank lines of FILE or stdin, split on "\n" (a "\r" before it is dropped). Memory stays
 * bounded: a line longer than `maxBytes` is skipped to its end, not buffered, and reported as a
 * problem; so is a line that is not valid UTF-8 (bytes are never silently replaced).
 */
export async function* inputLines(io: Io, file: string, maxBytes = MAX_LINE_BYTES): AsyncGenerator<InputLine> {
  const input = await openInput(io, file);
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let parts: Buffer[] = [];
  let size = 0;
  let tooLong = false;
  let n = 0;
  const finish = (): InputLine | null => {
    n++;
    let bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const long = tooLong;
    parts = [];
    size = 0;
    tooLong = false;
    if (long) return { line: n, problem: `longer than ${maxBytes} bytes` };
    if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
    if (n === 1 && bytes.subarray(0, 3).equals(UTF8_BOM)) bytes = bytes.subarray(3);
    if (bytes.length > maxBytes) return { line: n, problem: `longer than ${maxBytes} bytes` };
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      return { line: n, problem: 'not valid UTF-8' };
    }
    return text.trim() === '' ? null : { line: n, text };
  };
  const chunks = async function* (): AsyncGenerator<Buffer> {
    try {
      for await (const c of input) yield typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
    } catch (err) {
      throw new CliError(`${file}: read failed at line ${n + 1} (${(err as Error).message})`);
    }
  };
  for await (const chunk of chunks()) {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      if (!tooLong) {
        // +1: room for the "\r" of a CRLF line, dropped in finish().
        if (size + (end - start) > maxBytes + 1) {
          tooLong = true;
          parts = [];
        } else if (end > start) {
          parts.push(chunk.subarray(start, end));
          size += end - start;
        }
      }
      if (nl === -1) break;
      const item = finish();
      if (item) yield item;
      start = nl + 1;
    }
  }
  if (size > 0 || tooLong) {
    const item = finish();
    if (item) yield item;
  }
}
