import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';

const read = (path: string): string => readFileSync(new URL(path, import.meta.url), 'utf8');

describe('docs/testkit.md', () => {
  test('the guide example is test/testkit/guide-example.test.ts, verbatim but for the import path', () => {
    const doc = read('../../docs/testkit.md');
    const marker = doc.indexOf('<!-- guide-example:');
    expect(marker).toBeGreaterThan(0);
    const open = doc.indexOf('```ts\n', marker) + '```ts\n'.length;
    const block = doc.slice(open, doc.indexOf('\n```\n', open) + 1);
    const file = read('./guide-example.test.ts');
    // The package name resolves only once built; in the repository the test imports the sources.
    expect(block).toContain("from 'isogroup/testkit';");
    expect(block.replace("from 'isogroup/testkit';", "from '../../src/testkit/index.js';")).toBe(file);
  });

  test('every export of the test kit is named in the API reference', async () => {
    const doc = read('../../docs/testkit.md');
    const reference = doc.slice(doc.indexOf('## API reference'));
    const kit = await import('../../src/testkit/index.js');
    for (const name of Object.keys(kit)) expect([name, reference.includes(name)]).toEqual([name, true]);
  });
});
