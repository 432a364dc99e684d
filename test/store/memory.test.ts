import { describe, test, expect } from '@jest/globals';
import { createMemoryStore } from '../../src/store/memory.js';
import { StoreError } from '../../src/store/types.js';
import { describeStoreConformance, events } from './conformance.js';

describeStoreConformance('memory', async () => createMemoryStore());

describe('memory store', () => {
  test('stored events cannot be changed through the objects given or returned', async () => {
    const store = createMemoryStore();
    const [event] = events(1);
    const data = event!.data as { i: number };
    await store.append('host-a', [event!]);
    data.i = 99;
    const read = await store.read('host-a')[Symbol.asyncIterator]().next();
    expect(read.value?.data).toEqual({ i: 0 });
    expect(Object.isFrozen(read.value?.data)).toBe(true);
    await store.close();
  });

  test('a foreign checkpoint is refused, appends after close are refused', async () => {
    const store = createMemoryStore();
    expect(() => store.subscribe({ after: 'abc:def', onEvent: () => undefined })).toThrow(StoreError);
    await store.close();
    await expect(store.append('host-a', events(1))).rejects.toMatchObject({ code: 'ECLOSED' });
  });
});
