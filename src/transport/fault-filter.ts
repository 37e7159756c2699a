/**
 * Fault injection for tests: drop, delay, partition messages by sender and
 * receiver. A filter with no rules lets everything through, so it is off
 * unless a test adds a rule; production code never creates one.
 *
 * One filter is usually shared by all the in-process nodes of a test, so that
 * `partition([a], [b, c])` reads as the picture it draws. HttpTransport applies
 * it when a message is sent (a dropped message never reaches the wire);
 * peer routes can apply another one on arrival.
 *
 * Deterministic: probabilistic drops draw from a seeded generator, in rule
 * order, only for rules that match, so the same sends give the same losses.
 */
import type { NodeId } from '../raft/messages.js';
import { SeededRandom } from '../raft/rng.js';

export type FaultDecision =
  | { readonly action: 'deliver' }
  | { readonly action: 'drop' }
  | { readonly action: 'delay'; readonly delayMs: number };

const DELIVER: FaultDecision = { action: 'deliver' };
const DROP: FaultDecision = { action: 'drop' };

export type FaultRuleId = number;

interface FaultRule {
  readonly id: FaultRuleId;
  readonly matches: (from: NodeId, to: NodeId) => boolean;
  /** Drop with this probability in [0, 1]; undefined for a delay rule. */
  readonly dropProbability?: number;
  readonly delayMs?: number;
}

/** `undefined` matches any node. */
function endpointMatcher(from?: NodeId, to?: NodeId): (f: NodeId, t: NodeId) => boolean {
  return (f, t) => (from === undefined || f === from) && (to === undefined || t === to);
}

export class FaultFilter {
  private rules: FaultRule[] = [];
  private nextRuleId: FaultRuleId = 1;
  private readonly random: SeededRandom;

  constructor(options: { seed?: number } = {}) {
    this.random = new SeededRandom(options.seed ?? 1);
  }

  /** Whether any rule is active. */
  get enabled(): boolean {
    return this.rules.length > 0;
  }

  /** Drops messages from `from` to `to` (either omitted = any node), with `probability` (default 1). */
  drop(from?: NodeId, to?: NodeId, probability = 1): FaultRuleId {
    if (!(probability >= 0 && probability <= 1))
      throw new RangeError('probability must be in [0, 1]');
    return this.add({ matches: endpointMatcher(from, to), dropProbability: probability });
  }

  /** Holds messages from `from` to `to` (either omitted = any node) for `delayMs` before sending. */
  delay(delayMs: number, from?: NodeId, to?: NodeId): FaultRuleId {
    if (!(Number.isFinite(delayMs) && delayMs >= 0)) throw new RangeError('delayMs must be >= 0');
    return this.add({ matches: endpointMatcher(from, to), delayMs });
  }

  /** Cuts every link between a node of `groupA` and a node of `groupB`, both ways. */
  partition(groupA: readonly NodeId[], groupB: readonly NodeId[]): FaultRuleId {
    const a = new Set(groupA);
    const b = new Set(groupB);
    return this.add({
      matches: (f, t) => (a.has(f) && b.has(t)) || (b.has(f) && a.has(t)),
      dropProbability: 1,
    });
  }

  /** Cuts the link from `from` to `to` only: `to` still reaches `from`. */
  oneWay(from: NodeId, to: NodeId): FaultRuleId {
    return this.drop(from, to);
  }

  /** Cuts `node` off from everyone, both ways. */
  isolate(node: NodeId): FaultRuleId {
    return this.add({ matches: (f, t) => f === node || t === node, dropProbability: 1 });
  }

  removeRule(id: FaultRuleId): void {
    this.rules = this.rules.filter((r) => r.id !== id);
  }

  /** Removes every rule: all links work again. */
  heal(): void {
    this.rules = [];
  }

  /** Whether any rule covers the link between `a` and `b`, either way (draws no randomness). */
  affects(a: NodeId, b: NodeId): boolean {
    return this.rules.some((rule) => rule.matches(a, b) || rule.matches(b, a));
  }

  /** What to do with one message from `from` to `to`. Drops win over delays; delays take the longest. */
  decide(from: NodeId, to: NodeId): FaultDecision {
    if (this.rules.length === 0) return DELIVER;
    let delayMs = 0;
    for (const rule of this.rules) {
      if (!rule.matches(from, to)) continue;
      if (rule.dropProbability !== undefined) {
        if (rule.dropProbability >= 1) return DROP;
        if (rule.dropProbability > 0 && this.random.nextFloat() < rule.dropProbability) return DROP;
      } else if (rule.delayMs !== undefined && rule.delayMs > delayMs) {
        delayMs = rule.delayMs;
      }
    }
    return delayMs > 0 ? { action: 'delay', delayMs } : DELIVER;
  }

  private add(rule: Omit<FaultRule, 'id'>): FaultRuleId {
    const id = this.nextRuleId++;
    this.rules = [...this.rules, { ...rule, id }];
    return id;
  }
}
