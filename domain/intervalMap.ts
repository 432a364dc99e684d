/**
 * A persistent (immutable, path-copying) B+tree of inclusive 64-bit intervals.
 *
 * Why: the mappings of a domain can number in the millions and every `at` query wants the state
 * of some earlier position. Each insert/remove copies only the O(log n) nodes on its path and
 * shares everything else with the previous version, so keeping a version per snapshot is free
 * and the cost per map/unmap stays flat as the map grows.
 *
 * Transient edits: a batch of changes (one reducer batch) may pass an `Edit` token; nodes created
 * under that token are mutated in place by later changes of the same batch instead of being
 * copied again. Nodes from earlier batches (which older versions share) are never mutated.
 *
 * Entries are ordered by `start` (duplicates allowed, kept in insertion order) and carry two more
 * 64-bit words (`aux`, `pos`) and an optional reference. Every node knows the largest `last`
 * below it, so overlap queries are correct even when intervals overlap (the PA reverse index has
 * overlapping entries by nature; observed logs may too). Leaves pack their words into one
 * BigUint64Array of fixed capacity.
 *
 * A map also knows whether its entries are disjoint (every entry ends before the next one starts:
 * the mappings of a domain, which `map` never lets overlap). Each insert compares the new entry with
 * its two neighbours, so the flag costs a few word reads; a removal keeps it; an overlap clears it
 * until the map is empty again. In a disjoint map at most one entry contains a point, the one that
 * ends first at or after it: a query reads the leaf's `last` words in place instead of a
 * running-maximum index built at its first visit, and a version that answers many queries builds a
 * flat index of its leaves (see `LeafIndex`).
 */

const MAX_FANOUT = 32;
const MIN_LEAF = MAX_FANOUT >> 2;
const W = 4; // words per entry: start, last, aux, pos

export interface IntervalEntry<R = unknown> {
  readonly start: bigint;
  readonly last: bigint;
  /** Payload word: the PA of a mapping, or the IOVA in the reverse index. */
  readonly aux: bigint;
  /** Payload word: the log position that created the entry (provenance), plus flags above bit 48. */
  readonly pos: bigint;
  readonly ref: R | undefined;
}

/** A transient-edit token: nodes it owns may be changed in place. Never reuse one after publishing. */
export type Edit = { readonly __edit: true };

type Owner = Edit | null;

class Leaf {
  /**
   * The point-query index, built at the first `firstOverlap` that reaches this leaf and dropped by
   * every change (null = not built): the running maximum of `last` as doubles (`pd`, contiguous and
   * compared without BigInt objects) and exactly (`pm`; null when the `last` words never decrease,
   * the usual case of disjoint mappings: then they are their own running maximum).
   */
  pd: number[] | null = null;
  pm: BigUint64Array | null = null;
  constructor(
    public w: BigUint64Array,
    public refs: unknown[] | null,
    public n: number,
    public min: bigint,
    public max: bigint,
    public owner: Owner,
  ) {}
  get count(): number {
    return this.n;
  }
  recompute(): void {
    const w = this.w;
    this.pd = null;
    this.min = this.n > 0 ? w[0]! : 0n;
    let max = 0n;
    for (let i = 1; i < this.n * W; i += W) if (w[i]! > max) max = w[i]!;
    this.max = max;
  }
}

class Inner {
  min: bigint;
  max: bigint;
  count: number;
  /** Running maximum of the children's `max`, as doubles and exactly (built at the first point query, dropped by every change). */
  pd: number[] | null;
  pm: bigint[] | null;
  constructor(
    public kids: Node[],
    public owner: Owner,
  ) {
    this.min = 0n;
    this.max = 0n;
    this.count = 0;
    this.pd = null;
    this.pm = null;
    this.recompute();
  }
  recompute(): void {
    const kids = this.kids;
    this.pd = null;
    this.min = kids.length > 0 ? kids[0]!.min : 0n;
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

const newLeaf = (owner: Owner): Leaf => new Leaf(new BigUint64Array(MAX_FANOUT * W), null, 0, 0n, 0n, owner);

/** A copy of `leaf` owned by `owner` (so the caller may change it). */
const copyLeaf = (leaf: Leaf, owner: Owner): Leaf => {
  const c = newLeaf(owner);
  c.w.set(leaf.w.subarray(0, leaf.n * W));
  c.refs = leaf.refs ? leaf.refs.slice() : null;
  c.n = leaf.n;
  c.min = leaf.min;
  c.max = leaf.max;
  return c;
};

const mine = (node: Node, owner: Owner): boolean => owner !== null && node.owner === owner;

/**
 * Set by every insert: true when the new entry is not disjoint from its neighbours in map order (it
 * ends before it starts, the entry before it ends at or after its start, or the entry after it
 * starts at or before its end). Neighbours are enough: in a disjoint map, an entry that overlaps
 * the new one but is not its neighbour would overlap the neighbour between them.
 */
let insertBreaks = false;

/**
 * `after[at]`: the node after this leaf (null for the last leaf), whose `min` is the start of the
 * entry after it; passed as an array and index so that only an insert at the leaf's end reads it.
 */
const leafInsert = (leaf: Leaf, e: IntervalEntry, owner: Owner, after: readonly Node[] | null, at: number): Node[] => {
  const n = leaf.n;
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (leaf.w[mid * W]! > e.start) hi = mid;
    else lo = mid + 1;
  }
  const idx = lo;
  // The entry before it is in this leaf: a descent takes the last child starting at or before `e`.
  insertBreaks = e.last < e.start || (idx > 0 && leaf.w[(idx - 1) * W + 1]! >= e.start) || (idx < n ? leaf.w[idx * W]! <= e.last : after !== null && after[at]!.min <= e.last);
  const t = mine(leaf, owner) && n < MAX_FANOUT ? leaf : copyLeaf(leaf, owner);
  if (n === MAX_FANOUT) {
    // Full: write into a double-size scratch, then split into two owned leaves.
    const all = new BigUint64Array((n + 1) * W);
    all.set(t.w.subarray(0, idx * W), 0);
    all.set([e.start, e.last, e.aux, e.pos], idx * W);
    all.set(t.w.subarray(idx * W, n * W), (idx + 1) * W);
    let refs: unknown[] | null = null;
    if (t.refs !== null || e.ref !== undefined) {
      refs = t.refs ? t.refs.slice() : new Array<unknown>(n).fill(undefined);
      refs.splice(idx, 0, e.ref);
    }
    // An append past the last entry (maps filled in address order) keeps the full leaf full: the
    // new leaf starts with the one entry, so an ascending fill packs leaves instead of halving them.
    const h = idx === n ? n : (n + 1) >> 1;
    const a = newLeaf(owner);
    const b = newLeaf(owner);
    a.w.set(all.subarray(0, h * W));
    b.w.set(all.subarray(h * W));
    a.n = h;
    b.n = n + 1 - h;
    a.refs = refs ? refs.slice(0, h) : null;
    b.refs = refs ? refs.slice(h) : null;
    a.recompute();
    b.recompute();
    return [a, b];
  }
  const w = t.w;
  t.pd = null;
  w.copyWithin((idx + 1) * W, idx * W, n * W);
  w[idx * W] = e.start;
  w[idx * W + 1] = e.last;
  w[idx * W + 2] = e.aux;
  w[idx * W + 3] = e.pos;
  if (t.refs !== null || e.ref !== undefined) {
    if (t.refs === null) t.refs = new Array<unknown>(n).fill(undefined);
    t.refs.splice(idx, 0, e.ref);
  }
  t.n = n + 1;
  if (idx === 0) t.min = e.start;
  if (e.last > t.max || n === 0) t.max = n === 0 ? e.last : e.last > t.max ? e.last : t.max;
  return [t];
};

const insertNode = (node: Node, e: IntervalEntry, owner: Owner, after: readonly Node[] | null, at: number): Node[] => {
  if (node instanceof Leaf) return leafInsert(node, e, owner, after, at);
  const kids = node.kids;
  let i = kids.length - 1;
  while (i > 0 && kids[i]!.min > e.start) i--;
  const replaced = i + 1 < kids.length ? insertNode(kids[i]!, e, owner, kids, i + 1) : insertNode(kids[i]!, e, owner, after, at);
  if (!mine(node, owner)) {
    // A copy sums its children as they are now: the child may be one this edit already changed in
    // place (an owned node under a node of another version), so its count already has `e`.
    const next = kids.slice();
    next.splice(i, 1, ...replaced);
    if (next.length <= MAX_FANOUT) return [new Inner(next, owner)];
    const h = i === kids.length - 1 ? next.length - 1 : next.length >> 1;
    return [new Inner(next.slice(0, h), owner), new Inner(next.slice(h), owner)];
  }
  const t = node;
  t.pd = null;
  t.kids.splice(i, 1, ...replaced);
  if (t.kids.length <= MAX_FANOUT) {
    t.min = t.kids[0]!.min;
    if (e.last > t.max) t.max = e.last;
    t.count++;
    return [t];
  }
  const h = i === t.kids.length - 2 ? t.kids.length - 1 : t.kids.length >> 1;
  return [new Inner(t.kids.slice(0, h), owner), new Inner(t.kids.slice(h), owner)];
};

const concatLeaves = (a: Leaf, b: Leaf, owner: Owner): Leaf => {
  const c = newLeaf(owner);
  c.w.set(a.w.subarray(0, a.n * W), 0);
  c.w.set(b.w.subarray(0, b.n * W), a.n * W);
  if (a.refs || b.refs) c.refs = (a.refs ?? new Array<unknown>(a.n).fill(undefined)).concat(b.refs ?? new Array<unknown>(b.n).fill(undefined));
  c.n = a.n + b.n;
  c.recompute();
  return c;
};

type Match = (e: IntervalEntry) => boolean;

/** Returns the new node (null when it became empty), or undefined when nothing matched. */
const removeNode = (node: Node, start: bigint, match: Match, owner: Owner): Node | null | undefined => {
  if (node instanceof Leaf) {
    const { w, n } = node;
    // Binary search for the first entry with this start (entries are ordered by start).
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (w[mid * W]! < start) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < n; i++) {
      const s = w[i * W]!;
      if (s > start) return undefined;
      const e = entryAt(node, i);
      if (!match(e)) continue;
      if (n === 1) return null;
      const t = mine(node, owner) ? node : copyLeaf(node, owner);
      t.pd = null;
      t.w.copyWithin(i * W, (i + 1) * W, n * W);
      if (t.refs) t.refs.splice(i, 1);
      t.n = n - 1;
      // Only the removed entry's own bounds can move the leaf's: rescan only when it held the max.
      if (i === 0) t.min = t.w[0]!;
      if (e.last >= t.max) t.recompute();
      return t;
    }
    return undefined;
  }
  const kids = node.kids;
  let lo = 0;
  while (lo + 1 < kids.length && kids[lo + 1]!.min < start) lo++;
  for (let i = lo; i < kids.length && kids[i]!.min <= start; i++) {
    if (kids[i]!.max < start) continue;
    const r = removeNode(kids[i]!, start, match, owner);
    if (r === undefined) continue;
    const t = mine(node, owner) ? node : new Inner(kids.slice(), owner);
    const next = t.kids;
    if (r === null) next.splice(i, 1);
    else {
      next[i] = r;
      // Keep leaves from thinning out under long unmap runs: merge a small leaf into a neighbour.
      if (r instanceof Leaf && r.n < MIN_LEAF) {
        const right = next[i + 1];
        const left = next[i - 1];
        if (right instanceof Leaf && r.n + right.n <= MAX_FANOUT) next.splice(i, 2, concatLeaves(r, right, owner));
        else if (left instanceof Leaf && left.n + r.n <= MAX_FANOUT) next.splice(i - 1, 2, concatLeaves(left, r, owner));
      }
    }
    if (next.length === 0) return null;
    t.recompute();
    return t;
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

/** Builds a leaf's point-query index (see `Leaf.pd`). */
const indexLeaf = (leaf: Leaf): number[] => {
  const { w, n } = leaf;
  const pd: number[] = [];
  let pm: BigUint64Array | null = null;
  let max = 0n;
  for (let i = 0; i < n; i++) {
    const l = w[i * W + 1]!;
    if (l < max && pm === null) {
      pm = new BigUint64Array(n);
      for (let k = 0; k < i; k++) pm[k] = w[k * W + 1]!;
    }
    if (l > max) max = l;
    if (pm !== null) pm[i] = max;
    pd.push(Number(max));
  }
  leaf.pm = pm;
  leaf.pd = pd;
  return pd;
};

const indexInner = (node: Inner): number[] => {
  const kids = node.kids;
  const pd: number[] = [];
  const pm = new Array<bigint>(kids.length);
  let max = 0n;
  for (let i = 0; i < kids.length; i++) {
    const m = kids[i]!.max;
    if (m > max) max = m;
    pm[i] = max;
    pd.push(Number(max));
  }
  node.pm = pm;
  node.pd = pd;
  return pd;
};

/**
 * The first index whose running maximum reaches `a` (`da` = Number(a)), or `pd.length`. Rounding to
 * a double never reverses an order, so a smaller double means a smaller value and a larger double a
 * larger one; only equal doubles (addresses above 2^53 within one rounding step) need the exact word.
 */
const firstReaching = (pd: ArrayLike<number>, da: number, exact: (i: number) => bigint, a: bigint): number => {
  let lo = 0;
  let hi = pd.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pd[mid]! < da) lo = mid + 1;
    else hi = mid;
  }
  while (lo < pd.length && pd[lo] === da && exact(lo) < a) lo++;
  return lo;
};

/** The leaf found by the last `firstOverlapAt` (module scratch: no result object per query). */
let foundLeaf: Leaf | null = null;
let exactInner: bigint[] = [];
let exactLeaf: Leaf | null = null;
const innerExact = (i: number): bigint => exactInner[i]!;
const leafExact = (i: number): bigint => (exactLeaf!.pm !== null ? exactLeaf!.pm[i]! : exactLeaf!.w[i * W + 1]!);
let exactLeaves: readonly Leaf[] = [];
const leafIndexExact = (i: number): bigint => exactLeaves[i]!.max;

/**
 * The first entry (in map order) overlapping [a, b]: its index in `foundLeaf`, or -1. One descent,
 * no callback: in each node, binary-search the first child (entry) whose running maximum of `last`
 * reaches `a`. Every child before it ends below `a`; if that child starts after `b`, so does every
 * later one (children are ordered by start), and if nothing inside it overlaps, its entry that
 * reaches `a` starts after `b`, so every later entry does too. Hence one path decides.
 */
/**
 * The leaf holding the first entry (in map order) that reaches `a` (`da` is `a` as a double), down
 * the inner nodes' running maxima; null when no entry reaches `a`. No check of a child's start
 * against the query's end on the way: if it starts after it, so does the entry the leaf finds, and
 * the leaf's check answers (one load fewer per level).
 */
const descend = (root: Node, a: bigint, da: number): Leaf | null => {
  let node = root;
  while (node instanceof Inner) {
    const pd = node.pd ?? indexInner(node);
    exactInner = node.pm!;
    const i = firstReaching(pd, da, innerExact, a);
    if (i === pd.length) return null;
    node = node.kids[i]!;
  }
  return node;
};

const firstOverlapAt = (root: Node, a: bigint, b: bigint): number => {
  const da = Number(a);
  const leaf = descend(root, a, da);
  if (leaf === null) return -1;
  const pd = leaf.pd ?? indexLeaf(leaf);
  exactLeaf = leaf;
  const i = firstReaching(pd, da, leafExact, a);
  exactLeaf = null;
  if (i === leaf.n || leaf.w[i * W]! > b) return -1;
  foundLeaf = leaf;
  return i;
};

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const LO = LITTLE_ENDIAN ? 0 : 1;
const HI = 1 - LO;
/** True when the packed entries are disjoint and ascending (each ends before the next starts), compared as 32-bit halves. */
const disjointWords = (words: BigUint64Array): boolean => {
  const u = new Uint32Array(words.buffer, words.byteOffset, words.length * 2);
  const n = words.length / W;
  for (let i = 0; i < n; i++) {
    const s = i * W * 2;
    const l = s + 2;
    // start <= last
    if (u[s + HI]! > u[l + HI]! || (u[s + HI] === u[l + HI] && u[s + LO]! > u[l + LO]!)) return false;
    // last < next start
    if (i + 1 < n) {
      const t = s + W * 2;
      if (u[l + HI]! > u[t + HI]! || (u[l + HI] === u[t + HI] && u[l + LO]! >= u[t + LO]!)) return false;
    }
  }
  return true;
};

/**
 * A flat index of a disjoint map's leaves, in order: the largest `last` of each (as a double) and
 * the leaf. One binary search over it (a few hundred KiB for a million entries, so it stays in the
 * cache) replaces the descent through the inner nodes, whose objects and arrays are a dependent
 * load each. Built for one version of a map, after it answered enough point queries to pay for it.
 */
interface LeafIndex {
  readonly ends: Float64Array;
  readonly leaves: readonly Leaf[];
}

const buildLeafIndex = (root: Node): LeafIndex => {
  const leaves: Leaf[] = [];
  const visit = (node: Node): void => {
    if (node instanceof Leaf) leaves.push(node);
    else for (const k of node.kids) visit(k);
  };
  visit(root);
  const ends = new Float64Array(leaves.length);
  for (let i = 0; i < leaves.length; i++) ends[i] = Number(leaves[i]!.max);
  return { ends, leaves };
};

/**
 * `firstOverlapAt` for a disjoint map. Its `last` words ascend, so they are their own running
 * maximum: the first entry ending at or after `a` overlaps [a, b] if it starts at or before `b`,
 * and otherwise nothing does. Through the leaf index when there is one, else down the tree.
 */
const disjointOverlapAt = (root: Node, x: LeafIndex | null, a: bigint, b: bigint): number => {
  const da = Number(a);
  let leaf: Leaf;
  if (x !== null) {
    exactLeaves = x.leaves;
    const i = firstReaching(x.ends, da, leafIndexExact, a);
    if (i === x.ends.length) return -1;
    leaf = x.leaves[i]!;
  } else {
    const found = descend(root, a, da);
    if (found === null) return -1;
    leaf = found;
  }
  const w = leaf.w;
  let lo = 0;
  let hi = leaf.n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (w[mid * W + 1]! < a) lo = mid + 1;
    else hi = mid;
  }
  if (lo === leaf.n || w[lo * W]! > b) return -1;
  foundLeaf = leaf;
  return lo;
};

function* walk(node: Node): Generator<IntervalEntry> {
  if (node instanceof Leaf) {
    for (let i = 0; i < node.n; i++) yield entryAt(node, i);
  } else for (const k of node.kids) yield* walk(k);
}

/** An interval map's packed form: `pack()`'s result, what `unpack` and `deferred` take. */
export interface Packed<R = unknown> {
  readonly words: BigUint64Array;
  readonly refs: readonly (R | undefined)[] | null;
}

export class IntervalMap<R = unknown> {
  static readonly EMPTY: IntervalMap<never> = new IntervalMap<never>(null, true);

  static empty<R>(): IntervalMap<R> {
    return IntervalMap.EMPTY as unknown as IntervalMap<R>;
  }

  /** A fresh transient-edit token for one batch of changes. */
  static edit(): Edit {
    return { __edit: true };
  }

  /** A map restored from its packed form builds its tree at the first look inside (see `deferred`). */
  private pending: { readonly n: number; readonly load: () => Packed<R> } | null = null;

  /** Set when a map is built: true when its entries are disjoint (see the file comment); kept by removals. */
  /** Point queries answered by this version, and the leaf index they paid for (disjoint maps only). */
  private queries = 0;
  private lx: LeafIndex | null = null;

  private constructor(
    private node: Node | null,
    private dj: boolean,
  ) {}

  private get root(): Node | null {
    const p = this.pending;
    if (p !== null) {
      const { words, refs } = p.load();
      if (words.length !== p.n * W) throw new Error(`interval map: ${words.length / W} packed entries where ${p.n} were announced`);
      this.pending = null;
      const built = IntervalMap.unpack<R>(words, refs);
      this.node = built.node;
      this.dj = built.dj;
    }
    return this.node;
  }

  /** True when no two entries overlap (known from every insert; a map that once held an overlap says false until it is empty). */
  get disjoint(): boolean {
    return this.root === null || this.dj;
  }

  get size(): number {
    if (this.pending !== null) return this.pending.n;
    return this.node ? this.node.count : 0;
  }

  insert(start: bigint, last: bigint, aux = 0n, pos = 0n, ref?: R, edit?: Edit): IntervalMap<R> {
    const owner = edit ?? null;
    const e: IntervalEntry = { start, last, aux, pos, ref };
    const root = this.root;
    if (!root) {
      const leaf = newLeaf(owner);
      const only = leafInsert(leaf, e, leaf.owner, null, 0)[0]!;
      return new IntervalMap<R>(only, !insertBreaks);
    }
    const parts = insertNode(root, e, owner, null, 0);
    return new IntervalMap<R>(parts.length === 1 ? parts[0]! : new Inner(parts, owner), this.dj && !insertBreaks);
  }

  /** Removes the first entry with this start that `match` accepts (default: any). */
  remove(start: bigint, match: (e: IntervalEntry<R>) => boolean = () => true, edit?: Edit): IntervalMap<R> {
    if (!this.root) return this;
    const r = removeNode(this.root, start, match as Match, edit ?? null);
    if (r === undefined) return this;
    if (r === null) return IntervalMap.empty<R>();
    let root: Node = r;
    while (root instanceof Inner && root.kids.length === 1) root = root.kids[0]!;
    return new IntervalMap<R>(root, this.dj);
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
    // The reducer's overlap check between two inserts: a scan, so it builds no index that the next insert drops.
    if (!this.root) return false;
    return !visitOverlaps(this.root, a, b, () => false);
  }

  /** The first entry (lowest start) containing `x`, or undefined. */
  stab(x: bigint): IntervalEntry<R> | undefined {
    return this.firstOverlap(x, x);
  }

  /**
   * The first entry (in `overlapping` order) overlapping [a, b], or undefined: the same entry as
   * `overlapping(a, b, 1)[0]`, found by one root-to-leaf descent with binary search in each node
   * (the point-query path of `canDma`).
   */
  firstOverlap(a: bigint, b: bigint): IntervalEntry<R> | undefined {
    const root = this.root;
    if (root === null) return undefined;
    let i: number;
    if (this.dj) {
      // The leaf index costs a visit of every leaf: built once this version answered a query per 256 entries.
      if (this.lx === null && ++this.queries >= 64 && this.queries * 256 >= root.count) this.lx = buildLeafIndex(root);
      i = disjointOverlapAt(root, this.lx, a, b);
    } else i = firstOverlapAt(root, a, b);
    if (i < 0) return undefined;
    const leaf = foundLeaf!;
    foundLeaf = null;
    return entryAt<R>(leaf, i);
  }

  *[Symbol.iterator](): Generator<IntervalEntry<R>> {
    if (this.root) yield* walk(this.root) as Generator<IntervalEntry<R>>;
  }

  /**
   * The entries as one packed array (start, last, aux, pos per entry, ascending) plus their refs:
   * the persisted-snapshot form. `unpack` rebuilds the tree from it without re-inserting.
   */
  pack(): { readonly words: BigUint64Array; readonly refs: (R | undefined)[] | null } {
    // Not built yet: the words it was restored from are its packed form (copied: they may belong to another realm).
    const p = this.pending;
    if (p !== null) {
      const { words, refs } = p.load();
      if (words.length !== p.n * W) throw new Error(`interval map: ${words.length / W} packed entries where ${p.n} were announced`);
      return { words: new BigUint64Array(words), refs: refs ? refs.slice() : null };
    }
    const words = new BigUint64Array(this.size * W);
    let refs: (R | undefined)[] | null = null;
    let at = 0;
    const visit = (node: Node): void => {
      if (node instanceof Leaf) {
        words.set(node.w.subarray(0, node.n * W), at * W);
        if (node.refs) {
          refs ??= new Array<R | undefined>(this.size).fill(undefined);
          for (let i = 0; i < node.n; i++) refs[at + i] = node.refs[i] as R | undefined;
        }
        at += node.n;
      } else for (const k of node.kids) visit(k);
    };
    if (this.root) visit(this.root);
    return { words, refs };
  }

  /** The map whose `pack()` gave these words and refs (bulk-built: full leaves, balanced levels). */
  static unpack<R>(words: BigUint64Array, refs: readonly (R | undefined)[] | null): IntervalMap<R> {
    const n = words.length / W;
    if (!Number.isInteger(n)) throw new Error('interval map: packed words are not whole entries');
    if (n === 0) return IntervalMap.empty<R>();
    // Spread entries evenly over the fewest nodes of at most MAX_FANOUT, so none is under-full.
    const spread = <T>(count: number, make: (from: number, to: number) => T): T[] => {
      const parts = Math.ceil(count / MAX_FANOUT);
      const out: T[] = [];
      for (let p = 0; p < parts; p++) out.push(make(Math.floor((p * count) / parts), Math.floor(((p + 1) * count) / parts)));
      return out;
    };
    let level: Node[] = spread(n, (from, to) => {
      // A view, not a copy: nodes without an owner are never changed in place (edits copy them first).
      const leaf = new Leaf(words.subarray(from * W, to * W), null, to - from, 0n, 0n, null);
      if (refs) {
        for (let i = from; i < to; i++) {
          if (refs[i] !== undefined) {
            leaf.refs = refs.slice(from, to);
            break;
          }
        }
      }
      leaf.recompute();
      return leaf;
    });
    while (level.length > 1) {
      const kids = level;
      level = spread(kids.length, (from, to) => new Inner(kids.slice(from, to), null));
    }
    return new IntervalMap<R>(level[0]!, disjointWords(words));
  }

  /**
   * `unpack`, deferred: the map knows its size at once and builds its tree (and asks for its refs)
   * at the first query or change. A restored state holds many maps a one-shot query never reads
   * (other domains, the PA reverse index): those are never built.
   */
  static unpackLazy<R>(words: BigUint64Array, refs: () => readonly (R | undefined)[] | null): IntervalMap<R> {
    const n = words.length / W;
    if (!Number.isInteger(n)) throw new Error('interval map: packed words are not whole entries');
    return IntervalMap.deferred<R>(n, () => ({ words, refs: refs() }));
  }

  /**
   * A map of `n` entries whose packed form (`pack()`'s words and refs) is fetched by `load` at the
   * first query, change or pack, once: a persisted snapshot read in parts reads a map's bytes from
   * the file only when it is first used. What `load` throws, that first use throws (and the next
   * use asks again).
   */
  static deferred<R>(n: number, load: () => Packed<R>): IntervalMap<R> {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error('interval map: a deferred map needs a whole entry count');
    if (n === 0) return IntervalMap.empty<R>();
    const m = new IntervalMap<R>(null, false);
    m.pending = { n, load };
    return m;
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
