/**
 * Checking a stream's hash chain from outside the store's own validation, and sealed checkpoints.
 *
 * A tampered file log no longer opens (its checksums or positions fail), which says that something
 * is wrong but not what: `chainEntries` reads the raw lines of a file log (checksums are not the
 * judge here, the chain is), or any other store's stream as the store returns it, so that
 * `verifyChain` can name the first break and its kind.
 *
 * A seal is a statement {host, stream, pos, head, at} signed with Ed25519 (node:crypto). Shipped
 * elsewhere, it proves later that the log still holds that prefix unchanged — the one thing a chain
 * alone cannot show is a truncated tail, or a log rewritten from the first entry on.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { EventStore, RecordedEvent } from './types.js';
import { StoreError } from './types.js';
import { canonicalJson, verifyChain, type Hashable, type IntegrityReport, type KnownHead } from './chain.js';
import { filePath } from './open.js';
import { storedForm } from './upcast.js';
import { archivedBytes } from './segments.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The entries of `stream` in a file log's bytes, in file order, whatever their checksums say. */
export const fileChainEntries = (bytes: Buffer, stream: string, file = 'log'): Hashable[] => {
  const out: Hashable[] = [];
  const text = bytes.toString('utf8');
  let line = 0;
  for (const raw of text.split('\n')) {
    line += 1;
    if (raw === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      if (line === text.split('\n').length) continue; // a torn last line: the store ignores it too
      throw new StoreError(`${file}:${line}: not JSON: the line was damaged, cannot check the chain past it`, 'ECORRUPT');
    }
    if (!isObject(parsed) || parsed.stream !== stream) continue;
    const { pos, id, type, data, meta, prev, hash } = parsed;
    out.push({
      pos: typeof pos === 'number' ? pos : -1,
      id: typeof id === 'string' ? id : '',
      type: typeof type === 'string' ? type : '',
      data,
      meta,
      ...(typeof prev === 'string' ? { prev } : {}),
      ...(typeof hash === 'string' ? { hash } : {}),
    });
  }
  return out;
};

/** What the chain covers of a record: the entry as stored (not its upcast form). */
const pick = (r: RecordedEvent): Hashable => {
  const e = storedForm(r);
  return {
    pos: e.pos,
    id: e.id,
    type: e.type,
    data: e.data,
    meta: e.meta,
    ...(e.prev !== undefined ? { prev: e.prev } : {}),
    ...(e.hash !== undefined ? { hash: e.hash } : {}),
  };
};

/** A stream's entries for checking: the raw lines of a file log, or what another store returns. */
export const chainEntries = async (url: string, stream: string, open: () => Promise<EventStore>): Promise<Hashable[]> => {
  if (url.startsWith('file:')) {
    const file = filePath(url);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new StoreError(`cannot read ${file}: ${(error as Error).message}`, 'EIO');
    }
    // Archive segments and the live log are one chain (the segments' digests are not the judge here either).
    return fileChainEntries(Buffer.concat([await archivedBytes(file, bytes, false), bytes]), stream, file);
  }
  return storeChainEntries(await open(), stream);
};

/** A stream's entries for checking, as an open store returns them (their stored form). */
export const storeChainEntries = async (store: EventStore, stream: string): Promise<Hashable[]> => {
  const out: Hashable[] = [];
  for await (const e of store.read(stream)) out.push(pick(e));
  return out;
};

// ---- seals ------------------------------------------------------------------------------------

export interface SealStatement {
  readonly kind: 'isogroup-seal';
  readonly version: 1;
  readonly host: string;
  readonly stream: string;
  /** The sealed prefix: entries 1..pos. */
  readonly pos: number;
  /** Chain head at pos (the hash of entry pos; 64 zeros for an empty stream). */
  readonly head: string;
  /** ISO-8601 UTC time of sealing. */
  readonly at: string;
  /** The signer's Ed25519 public key (SPKI, PEM). */
  readonly publicKey: string;
}

/** A seal file: the statement and a base64 Ed25519 signature over its canonical JSON. */
export interface Seal extends SealStatement {
  readonly signature: string;
}

export const DEFAULT_SEAL_KEY = '.isogroup/seal-key.pem';

/** Makes an Ed25519 key pair: the private key (PKCS#8 PEM, mode 0600) at `file`, the public one at `file.pub`. */
export const newSealKey = async (file: string): Promise<{ privateFile: string; publicFile: string }> => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  try {
    await writeFile(file, pem, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new StoreError(code === 'EEXIST' ? `${file} already exists: not overwriting a key` : `cannot write ${file}: ${(error as Error).message}`, code ?? 'EIO');
  }
  await writeFile(`${file}.pub`, publicKey.export({ type: 'spki', format: 'pem' }) as string, { mode: 0o644 });
  return { privateFile: file, publicFile: `${file}.pub` };
};

const readKeyText = async (file: string, what: string): Promise<string> => {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const hint = (error as NodeJS.ErrnoException).code === 'ENOENT' ? ' (make one with `isogroup seal --new-key FILE`)' : '';
    throw new StoreError(`cannot read the ${what} ${file}: ${(error as Error).message}${hint}`, 'EKEY');
  }
};

export const loadPrivateKey = async (file: string): Promise<KeyObject> => {
  const text = await readKeyText(file, 'seal key');
  try {
    const key = createPrivateKey(text);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`an ${String(key.asymmetricKeyType)} key, not Ed25519`);
    return key;
  } catch (error) {
    throw new StoreError(`${file}: not an Ed25519 private key (${(error as Error).message})`, 'EKEY');
  }
};

/** A public key from a public or a private key file (PEM). */
export const loadPublicKey = async (file: string): Promise<KeyObject> => {
  const text = await readKeyText(file, 'key');
  try {
    const key = text.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(text)) : createPublicKey(text);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`an ${String(key.asymmetricKeyType)} key, not Ed25519`);
    return key;
  } catch (error) {
    throw new StoreError(`${file}: not an Ed25519 key (${(error as Error).message})`, 'EKEY');
  }
};

const statementOf = (s: SealStatement): SealStatement => ({
  kind: s.kind,
  version: s.version,
  host: s.host,
  stream: s.stream,
  pos: s.pos,
  head: s.head,
  at: s.at,
  publicKey: s.publicKey,
});

export const makeSeal = (key: KeyObject, claim: Omit<SealStatement, 'kind' | 'version' | 'publicKey'>): Seal => {
  const publicKey = createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string;
  const statement = statementOf({ kind: 'isogroup-seal', version: 1, ...claim, publicKey });
  const signature = sign(null, Buffer.from(canonicalJson(statement), 'utf8'), key).toString('base64');
  return { ...statement, signature };
};

/** Parses a seal and checks its signature (against `trusted` when given, else the key it carries). */
export const openSeal = (text: string, file: string, trusted?: KeyObject): Seal => {
  let s: unknown;
  try {
    s = JSON.parse(text);
  } catch (error) {
    throw new StoreError(`${file}: not a seal (not JSON: ${(error as Error).message})`, 'ESEAL');
  }
  if (!isObject(s) || s.kind !== 'isogroup-seal') throw new StoreError(`${file}: not an isogroup seal (no "kind":"isogroup-seal")`, 'ESEAL');
  if (s.version !== 1) throw new StoreError(`${file}: seal version ${JSON.stringify(s.version)} is not supported (1)`, 'ESEAL');
  for (const f of ['host', 'stream', 'head', 'at', 'publicKey', 'signature'] as const) {
    if (typeof s[f] !== 'string') throw new StoreError(`${file}: seal field "${f}" is missing or not a string`, 'ESEAL');
  }
  if (typeof s.pos !== 'number' || !Number.isSafeInteger(s.pos) || s.pos < 0) throw new StoreError(`${file}: seal field "pos" is not a position`, 'ESEAL');
  const seal = s as unknown as Seal;
  let key: KeyObject;
  try {
    key = trusted ?? createPublicKey(seal.publicKey);
  } catch (error) {
    throw new StoreError(`${file}: seal field "publicKey" is not a key (${(error as Error).message})`, 'ESEAL');
  }
  const good = verify(null, Buffer.from(canonicalJson(statementOf(seal)), 'utf8'), key, Buffer.from(seal.signature, 'base64'));
  if (!good) {
    throw new StoreError(`${file}: the seal's signature does not verify${trusted ? ' with the given key' : ''}: the seal was altered or signed by another key`, 'ESEAL');
  }
  return seal;
};

export const knownHeadOf = (seal: Seal): KnownHead => ({ pos: seal.pos, head: seal.head });

export type { IntegrityReport };
export { verifyChain };
