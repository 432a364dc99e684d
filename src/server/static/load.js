/* global URLSearchParams */
/**
 * Fetching for every panel of the dashboard: `api` (GET a JSON route, reusing ETag'd bodies) and
 * `useLoad` (re-run a load when its inputs change, aborting the previous one). Loads in flight are
 * counted page-wide (`window.__isogroup.inflight`, `body[data-busy]`) so tests wait for 0.
 */
import { useEffect, useState } from 'preact/hooks';

/** Bodies of large, rarely changing answers (devices, groups) by URL without `at`, with their ETag. */
const tagged = new Map();

/**
 * GET a JSON API route. For routes answered with an ETag the previous body is reused on a 304,
 * so dragging the slider over mapping-only history does not re-download or re-parse the tree.
 * @param {string} path
 * @param {Record<string, string | number | undefined | null>} query
 * @param {AbortSignal} [signal]
 */
export const api = async (path, query = {}, signal) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const url = `${path}${q.size ? `?${q}` : ''}`;
  const q2 = new URLSearchParams(q);
  q2.delete('at');
  const key = `${path}?${q2}`;
  const prev = tagged.get(key);
  const headers = prev ? { 'if-none-match': prev.tag } : {};
  const res = await fetch(url, { signal, cache: 'no-store', headers });
  if (res.status === 304 && prev) return prev.body;
  const body = await res.json().catch(() => ({ error: { status: res.status, message: res.statusText } }));
  if (!res.ok) throw new Error(body?.error?.message ?? `${res.status} ${res.statusText}`);
  const tag = res.headers.get('etag');
  if (tag) tagged.set(key, { tag, body });
  return body;
};

/** Loads in flight (and scheduled), page-wide: tests and the measurement wait for 0. */
const busy = (n) => {
  const g = window.__isogroup;
  g.inflight += n;
  document.body.dataset.busy = g.inflight > 0 ? '1' : '0';
};

/** Runs `load` whenever `deps` change (after `delay` ms), aborting the previous run. */
export const useLoad = (load, deps, delay = 0) => {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  useEffect(() => {
    const ctl = new AbortController();
    let cancelled = false;
    let settled = false;
    const done = () => {
      if (!settled) {
        settled = true;
        busy(-1);
      }
    };
    busy(+1);
    setState((s) => ({ ...s, loading: true }));
    const t = setTimeout(() => {
      Promise.resolve()
        .then(() => load(ctl.signal))
        .then((data) => !cancelled && setState({ data, error: null, loading: false }))
        .catch((err) => !cancelled && err?.name !== 'AbortError' && setState((s) => ({ ...s, error: String(err?.message ?? err), loading: false })))
        .finally(done);
    }, delay);
    return () => {
      cancelled = true;
      clearTimeout(t);
      ctl.abort();
      done();
    };
  }, deps);
  return state;
};
