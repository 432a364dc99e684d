/**
 * KurrentDB needs a server (no Docker engine here): the conformance suite runs only when
 * KURRENTDB_CONNECTION_STRING is set (see docker-compose.yml). The URL and version mappings are
 * checked either way.
 */
import { describe, test, expect } from '@jest/globals';
import {
  checkpointOfPosition,
  normalizeKurrentUrl,
  openKurrentStore,
  positionOfCheckpoint,
  toStreamState,
} from '../../src/store/kurrentdb.js';
import { describeStoreConformance } from './conformance.js';

const connection = process.env.KURRENTDB_CONNECTION_STRING;

if (connection) {
  describeStoreConformance('kurrentdb', () => openKurrentStore(connection));
} else {
  // Without a server the whole suite is reported as skipped (every test of it), never as passed.
  const why = 'no server: set KURRENTDB_CONNECTION_STRING=kurrentdb://localhost:2113?tls=false (docker compose up -d)';
  console.warn(`KurrentDB conformance SKIPPED — ${why}`);
  describe.skip(`SKIPPED — ${why}`, () => {
    describeStoreConformance('kurrentdb', () => Promise.reject(new Error('not run without a server')));
  });
}

describe('kurrentdb store: boundaries (no server needed)', () => {
  test('esdb:// URLs are rewritten to kurrentdb://; others are left alone', () => {
    expect(normalizeKurrentUrl('esdb://localhost:2113?tls=false')).toBe('kurrentdb://localhost:2113?tls=false');
    expect(normalizeKurrentUrl('esdb+discover://a:2113,b:2113')).toBe('kurrentdb+discover://a:2113,b:2113');
    expect(normalizeKurrentUrl('kdb://localhost:2113')).toBe('kdb://localhost:2113');
  });

  test('expected versions (1-based positions) map onto 0-based stream states', () => {
    expect(toStreamState(undefined)).toBe('any');
    expect(toStreamState('any')).toBe('any');
    expect(toStreamState('no-stream')).toBe('no_stream');
    expect(toStreamState(0)).toBe('no_stream');
    expect(toStreamState('stream-exists')).toBe('stream_exists');
    expect(toStreamState(1)).toBe(0n);
    expect(toStreamState(42)).toBe(41n);
  });

  test('checkpoints are fixed-width commit:prepare, ordered like $all, and round-trip', () => {
    const positions = [
      { commit: 0n, prepare: 0n },
      { commit: 9n, prepare: 9n },
      { commit: 10n, prepare: 3n },
      { commit: 10n, prepare: 10n },
      { commit: 18446744073709551615n, prepare: 18446744073709551615n },
    ];
    const checkpoints = positions.map(checkpointOfPosition);
    expect([...checkpoints].sort()).toEqual(checkpoints);
    expect(checkpoints.map(positionOfCheckpoint)).toEqual(positions);
    expect(() => positionOfCheckpoint('000000000001')).toThrow(/checkpoint/);
  });
});

test('an unreachable server is a StoreError at open (ECONNECT), with the URL', async () => {
  await expect(openKurrentStore('esdb://127.0.0.1:1?tls=false&maxDiscoverAttempts=1')).rejects.toMatchObject({
    name: 'StoreError',
    code: 'ECONNECT',
    message: expect.stringContaining('127.0.0.1:1'),
  });
});
