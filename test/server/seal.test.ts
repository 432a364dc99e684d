/**
 * Periodic seals and the seal panel's answer (GET /api/seal): the newest seal of a host and whether
 * the log still holds, unchanged, the prefix it signed — on a file log checked over its raw lines,
 * so an edit in place, a cut-off tail or a seal signed by a stranger all show.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type DashboardServer } from '../../src/server/index.js';
import { openFileStore } from '../../src/store/file.js';
import { chainEntries } from '../../src/store/integrity.js';
import { createSealer, parseEvery, type Sealer } from '../../src/store/sealer.js';
import type { EventStore } from '../../src/store/types.js';
import { createFleet } from '../../src/fleet.js';
import { tempDir } from '../cli/run.js';
import { get, writeDemo } from './helpers.js';

const key = generateKeyPairSync('ed25519').privateKey;
let dir: string;
let file: string;
let store: EventStore;
let sealer: Sealer;
let srv: DashboardServer;

beforeAll(async () => {
  dir = tempDir();
  file = join(dir, 'log.jsonl');
  const w = await openFileStore(file);
  await writeDemo(w);
  await w.close();
  store = await openFileStore(file, { readOnly: true });
  sealer = createSealer({
    store,
    hosts: () => ['local'],
    dir: join(dir, 'seals'),
    key,
    recheckMs: 0,
    entries: (stream) => chainEntries(`file:${file}`, stream, async () => store),
    warn: () => undefined,
  });
  srv = await createServer({ store, port: 0, seals: sealer });
});

afterAll(async () => {
  await sealer.close();
  await srv.close();
  await store.close();
});

describe('the seal panel', () => {
  test('no seal yet: says so; after sealing: the seal, and that it verifies against the log', async () => {
    expect((await get(srv.url, '/api/seal')).json).toMatchObject({ host: 'local', entries: 36, seal: null, verifies: null, trust: 'key', sealing: null });
    const [seal] = await sealer.sealNow();
    expect(seal).toMatchObject({ host: 'local', pos: 36 });
    expect(readdirSync(join(dir, 'seals'))).toEqual([expect.stringMatching(/^local-36-\d{8}T\d{9}Z\.seal\.json$/)]);
    expect(await sealer.sealNow()).toEqual([]); // nothing moved: no second seal
    const r = (await get(srv.url, '/api/seal?host=local')).json;
    expect(r).toMatchObject({ host: 'local', entries: 36, verifies: true, seal: { pos: 36, head: seal!.head, at: seal!.at } });
    expect(r.problem).toBeUndefined();
  });

  test('an entry edited in place after the seal: does not verify, and says where and what', async () => {
    const text = readFileSync(file, 'utf8');
    try {
      writeFileSync(file, text.replace('"uid":1000}', '"uid":1001}'));
      const r = (await get(srv.url, '/api/seal')).json;
      expect(r).toMatchObject({ verifies: false, break: { kind: 'edited' } });
      expect(r.problem).toMatch(/^#\d+ edited: /);
    } finally {
      writeFileSync(file, text);
    }
  });

  test('the tail cut off after the seal: does not verify (truncated)', async () => {
    const text = readFileSync(file, 'utf8');
    try {
      writeFileSync(file, text.split('\n').slice(0, 30).join('\n') + '\n');
      expect((await get(srv.url, '/api/seal?host=local')).json).toMatchObject({ verifies: false, entries: 30, break: { kind: 'truncated', pos: 31 } });
    } finally {
      writeFileSync(file, text);
    }
    expect((await get(srv.url, '/api/seal')).json).toMatchObject({ verifies: true });
  });

  test('a seal signed by another key: does not verify (the signature), even if its head is right', async () => {
    const stranger = createSealer({ store, hosts: () => ['local'], dir: join(dir, 'seals'), key: generateKeyPairSync('ed25519').privateKey, warn: () => undefined });
    await new Promise((r) => setTimeout(r, 5)); // a later time stamp: the stranger's seal is the newest file
    const [forged] = await stranger.sealNow();
    await stranger.close();
    expect(forged).toBeDefined();
    const fresh = createSealer({ store, hosts: () => ['local'], dir: join(dir, 'seals'), trusted: createPublicKey(key), warn: () => undefined });
    const r = await fresh.status('local');
    expect(r).toMatchObject({ verifies: false, seal: { pos: 36, head: forged!.head }, trust: 'key' });
    expect(r.problem).toMatch(/signature does not verify with the given key/);
    await fresh.close();
  });

  test('the fleet seals every host it knows, periodically', async () => {
    const out = join(tempDir(), 'seals');
    const fleet = await createFleet({ store, seal: { key, everyMs: 100, dir: out } });
    try {
      const files = (): string[] => {
        try {
          return readdirSync(out);
        } catch {
          return [];
        }
      };
      for (let i = 0; i < 100 && files().length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(readdirSync(out)).toEqual([expect.stringMatching(/^local-36-/)]);
      expect(await fleet.sealer.status('local')).toMatchObject({ verifies: true, sealing: { everyMs: 100, dir: out } });
    } finally {
      await fleet.close();
    }
  });

  test('--seal-every periods', () => {
    expect(parseEvery('30s')).toBe(30_000);
    expect(parseEvery('10m')).toBe(600_000);
    expect(parseEvery('1h')).toBe(3_600_000);
    expect(parseEvery('250ms')).toBe(250);
    expect(parseEvery('5')).toBe(5000);
    expect(() => parseEvery('5x')).toThrow('--seal-every: expected a period like 30s, 10m or 1h (at least 100ms), got "5x"');
    expect(() => parseEvery('10ms')).toThrow(/at least 100ms/);
  });
});
