import { describe, test, expect, afterEach } from '@jest/globals';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_STORE_URL, openStore, redactUrl, resolveStoreUrl } from '../../src/store/open.js';
import { StoreError } from '../../src/store/types.js';

describe('openStore', () => {
  const saved = process.env.ISOGROUP_STORE;
  afterEach(() => {
    if (saved === undefined) delete process.env.ISOGROUP_STORE;
    else process.env.ISOGROUP_STORE = saved;
  });

  test('the URL comes from the flag, else ISOGROUP_STORE, else the embedded file log', () => {
    delete process.env.ISOGROUP_STORE;
    expect(DEFAULT_STORE_URL).toBe('file:.isogroup/log.jsonl');
    expect(resolveStoreUrl()).toBe(DEFAULT_STORE_URL);
    process.env.ISOGROUP_STORE = 'memory:';
    expect(resolveStoreUrl()).toBe('memory:');
    expect(resolveStoreUrl('postgres://db/x')).toBe('postgres://db/x');
  });

  test('memory: and file: (relative to cwd, directories created, file:// URLs too)', async () => {
    const memory = await openStore('memory:');
    expect(memory.url).toBe('memory:');
    await memory.close();
    const dir = await mkdtemp(join(tmpdir(), 'isogroup-open-'));
    const cwd = process.cwd();
    try {
      process.chdir(dir);
      const file = await openStore('file:a/b/log.jsonl', { file: { warn: () => undefined } });
      await file.append('host-a', []);
      expect(file.url).toBe('file:a/b/log.jsonl');
      expect((await stat(join(dir, 'a/b/log.jsonl.lock'))).isFile()).toBe(true);
      await file.close();
      const absolute = await openStore(`file://${join(dir, 'c.jsonl')}`);
      await absolute.close();
    } finally {
      process.chdir(cwd);
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('an unknown scheme names the accepted ones; passwords never show', async () => {
    const error = await openStore('mysql://root:hunter2@db/x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('EURL');
    for (const scheme of ['file:', 'memory:', 'postgres://', 'kurrentdb://', 'esdb://']) {
      expect((error as Error).message).toContain(scheme);
    }
    expect((error as Error).message).not.toContain('hunter2');
  });

  test('redactUrl hides user passwords and password parameters only', () => {
    expect(redactUrl('postgres://me:secret@db:5432/x?schema=s')).toBe('postgres://me:***@db:5432/x?schema=s');
    expect(redactUrl('postgres://me@db/x')).toBe('postgres://me@db/x');
    expect(redactUrl('kurrentdb://admin:changeit@h1:2111,h2:2112?tls=false')).toBe('kurrentdb://admin:***@h1:2111,h2:2112?tls=false');
    expect(redactUrl('postgres://db/x?user=me&password=secret&ssl=1')).toBe('postgres://db/x?user=me&password=***&ssl=1');
    expect(redactUrl('file:.isogroup/log.jsonl')).toBe('file:.isogroup/log.jsonl');
  });
});
