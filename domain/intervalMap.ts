/**
 * A persistent (immutable, path-copying) B+tree of inclusive 64-bit intervals.
 *
 * Why: the mappings of a domain can number in the millions and every `at` query wants the state
 * of some earlier position. Each insert/remove copies only the O(log n) nodes on its path and
 * shares everything else with the previous version, so keeping a version per snapshot is free
 * and the cost per map/unmap stays flat as the map grows.
 *
 * Entries are ordered by `start` (duplicates allowed, kept in insertion order) and carry two more
 * 64-bit words (`aux`, `pos`) and an optional reference. Every node knows the largest `last`
 * below it, so overlap queries are correct even when intervals overlap (the PA reverse index has
 * overlapping entries by nature; observed logs may too). Leaves pack their words into one
 * BigUint64Array: about 40 bytes per entry at 1M entries.
 */

const MAX_FANOUT = 32;
const MIN_LEAF = MAX_FANOUT >> 2;
const W = 4; // words per entry: start, last, aux, pos

export interface IntervalEntry<R = unknown> {
  readonly start: bigint;
  readonly last: bigint;
  /** Payload word: the PA of a mapping, or the IOVA in the reverse index. */
  readonly aux: bigint;
  /** Payload word: the log position that created the entry (provenance), plus flags above bit 40. */
  readonly pos: bigint;
  readonly ref: R | undefined;
}

class Leaf {
  readonly min: bigint;
  readonly max: bigint;
  constructor(
    readonly w: BigUint64Array,
    readonly refs: unknown[] | null,
    readonly n: number,
  ) {
    this.min = n > 0 ? w[0]! : 0n;
    let max = 0n;
    for (let i = 1; i < n * W; i += W) if (w[i]! > max) max = w[i]!;
    this.max = max;
  }
  get count(): number {
    return this.n;
  }
}

class Inner {
  readonly min: bigint;
  readonly max: bigint;
  readonly count: number;
  constructor(readonly kids: readonly Node[]) {
    this.min = kids[0]!.min;
    let max = 0n;
    let count = 0;
    for (const k of kids) {
      if (k.max > max) max = k.max;
      count += k.count;
    }
    this.max = max;
    this.count = count;
  }
}

type Node = Leaf | Inner;

const entryAt = <R>(leaf: Leaf, i: number): IntervalEntry<R> => {
  const o = i * W;
  return { start: leaf.w[o]!, last: leaf.w[o + 1]!, aux: leaf.w[o + 2]!, pos: leaf.w[o + 3]!, ref: leaf.refs?.[i] as R | undefined };
};

const leafInsert = (leaf: Leaf, e: IntervalEntry): Node[] => {
  const { w, n } = leaf;
  let idx = n;
  for (let i = 0; i < n; i++) {
    if (w[i * W]! > e.start) {
      idx = i;
      break;
    }
  }
  const nw = new BigUint64Array((n + 1) * W);
  nw.set(w.subarray(0, idx * W), 0);
  nw[idx * W] = e.start;
  nw[idx * W + 1] = e.last;
  nw[idx * W + 2] = e.aux;
  nw[idx * W + 3] = e.pos;
  nw.set(w.subarray(idx * W, n * W), (idx + 1) * W);
  let refs: unknown[] | null = null;
  if (leaf.refs !== null || e.ref !== undefined) {
    refs = leaf.refs ? leaf.refs.slice() : new Array<unknown>(n).fill(undefined);
    refs.splice(idx, 0, e.ref);
  }
  const m = n + 1;
  if (m <= MAX_FANOUT) return [new Leaf(nw, refs, m)];
  const h = m >> 1;
  return [
    new Leaf(nw.slice(0, h * W), refs ? refs.slice(0, h) : null, h),
    new Leaf(nw.slice(h * W), refs ? refs.slice(h) : null, m - h),
  ];
};

const insertNode = (node: Node, e: IntervalEntry): Node[] => {
  if (node instanceof Leaf) return leafInsert(node, e);
  const kids = node.kids;
  let i = kids.length - 1;
  while (i > 0 && kids[i]!.min > e.start) i--;
  const replaced = insertNode(kids[i]!, e);
  const next = kids.slice(0, i).concat(replaced, kids.slice(i + 1));
  if (next.length <= MAX_FANOUT) return [new Inner(next)];
  const h = next.length >> 1;
  return [new Inner(next.slice(0, h)), new Inner(next.slice(h))];
};

const concatLeaves = (a: Leaf, b: Leaf): Leaf => {
  const w = new BigUint64Array((a.n + b.n) * W);
  w.set(a.w.subarray(0, a.n * W), 0);
  w.set(b.w.subarray(0, b.n * W), a.n * W);
  let refs: unknown[] | null = null;
  if (a.refs || b.refs) {
    refs = (a.refs ?? new Array<unknown>(a.n).fill(undefined)).concat(b.refs ?? new Array<unknown>(b.n).fill(undefined));
  }
  return new Leaf(w, refs, a.n + b.n);
};

type Match = (e: IntervalEntry) => boolean;

/** Returns the new node (null when it became empty), or undefined when nothing matched. */
const removeNode = (node: Node, start: bigint, match: Match): Node | null | undefined => {
  if (node instanceof Leaf) {
    const { w, n } = node;
    for (let i = 0; i < n; i++) {
      const s = w[i * W]!;
      if (s < start) continue;
      if (s > start) return undefined;
      if (!match(entryAt(node, i))) continue;
      if (n === 1) return null;
      const nw = new BigUint64Array((n - 1) * W);
      nw.set(w.subarray(0, i * W), 0);
      nw.set(w.subarray((i + 1) * W, n * W), i * W);
      let refs: unknown[] | null = null;
      if (node.refs) {
        refs = node.refs.slice();
        refs.splice(i, 1);
      }
      return new Leaf(nw, refs, n - 1);
    }
    return undefined;
  }
  const kids = node.kids;
  let lo = 0;
  while (lo + 1 < kids.length && kids[lo + 1]!.min < start) lo++;
  for (let i = lo; i < kids.length && kids[i]!.min <= start; i++) {
    if (kids[i]!.max < start) continue;
    const r = removeNode(kids[i]!, start, match);
    if (r === undefined) continue;
    const next = kids.slice();
    if (r === null) next.splice(i, 1);
    else {
      next[i] = r;
      // Keep leaves from thinning out under long unmap runs: merge a small leaf into a neighbour.
      if (r instanceof Leaf && r.n < MIN_LEAF) {
        const right = next[i + 1];
        const left = next[i - 1];
        if (right instanceof Leaf && r.n + right.n <= MAX_FANOUT) next.splice(i, 2, concatLeaves(r, right));
        else if (left instanceof Leaf && left.n + r.n <= MAX_FANOUT) next.splice(i - 1, 2, concatLeaves(left, r));
      }
    }
    return next.length === 0 ? null : new Inner(next);
  }
  return undefined;
};

/** Visits entries overlapping [a, b] in ascending start order; `visit` returns false to stop. */
const visitOverlaps = (node: Node, a: bigint, b: bigint, visit: (leaf: Leaf, i: number) => boolean): boolean => {
  if (node.min > b || node.max < a) return true;
  if (node instanceof Leaf) {
    const { w, n } = node;
    for (let i = 0; i < n; i++) {
      if (w[i * W]! > b) return true;
      if (w[i * W + 1]! >= a && !visit(node, i)) return false;
    }
    return true;
  }
  for (const k of node.kids) {
    if (k.min > b) return true;
    if (k.max >= a && !visitOverlaps(k, a, b, visit)) return false;
  }
  return true;
};

function* walk(node: Node): Generator<IntervalEntry> {
  if (node instanceof Leaf) {
    for (let i = 0; i < node.n; i++) yield entryAt(node, i);
  } else for (const k of node.kids) yield* walk(k);
}

export class IntervalMap<R = unknown> {
  static readonly EMPTY: IntervalMap<never> = new IntervalMap<never>(null);

  static empty<R>(): IntervalMap<R> {
    return IntervalMap.EMPTY as unknown as IntervalMap<R>;
  }

  private constructor(private readonly root: Node | null) {}

  get size(): number {
    return this.root ? this.root.count : 0;
  }

  insert(start: bigint, last: bigint, aux = 0n, pos = 0n, ref?: R): IntervalMap<R> {
    const e: IntervalEntry = { start, last, aux, pos, ref };
    if (!this.root) return new IntervalMap<R>(new Leaf(new BigUint64Array([start, last, aux, pos]), ref === undefined ? null : [ref], 1));
    const parts = insertNode(this.root, e);
    return new IntervalMap<R>(parts.length === 1 ? parts[0]! : new Inner(parts));
  }

  /** Removes the first entry with this start that `match` accepts (default: any). */
  remove(start: bigint, match: (e: IntervalEntry<R>) => boolean = () => true): IntervalMap<R> {
    if (!this.root) return this;
    const r = removeNode(this.root, start, match as Match);
    if (r === undefined) return this;
    let root = r;
    while (root instanceof Inner && root.kids.length === 1) root = root.kids[0]!;
    return r === null ? IntervalMap.empty<R>() : new IntervalMap<R>(root);
  }

  /** Entries overlapping [a, b], ascending by start. */
  overlapping(a: bigint, b: bigint, limit = Infinity): IntervalEntry<R>[] {
    const out: IntervalEntry<R>[] = [];
    if (this.root && limit > 0) {
      visitOverlaps(this.root, a, b, (leaf, i) => {
        out.push(entryAt<R>(leaf, i));
        return out.length < limit;
      });
    }
    return out;
  }

  /** True when some entry overlaps [a, b]. */
  intersects(a: bigint, b: bigint): boolean {
    if (!this.root) return false;
    return !visitOverlaps(this.root, a, b, () => false);
  }

  /** The first entry (lowest start) containing `x`, or undefined. */
  stab(x: bigint): IntervalEntry<R> | undefined {
    let found: IntervalEntry<R> | undefined;
    if (this.root) {
      visitOverlaps(this.root, x, x, (leaf, i) => {
        found = entryAt<R>(leaf, i);
        return false;
      });
    }
    return found;
  }

  *[Symbol.iterator](): Generator<IntervalEntry<R>> {
    if (this.root) yield* walk(this.root) as Generator<IntervalEntry<R>>;
  }

  /** Entries in ascending order, paged (for listings). */
  slice(offset: number, limit: number): IntervalEntry<R>[] {
    const out: IntervalEntry<R>[] = [];
    let i = 0;
    for (const e of this) {
      if (i++ < offset) continue;
      if (out.length >= limit) break;
      out.push(e);
    }
    return out;
  }
}
