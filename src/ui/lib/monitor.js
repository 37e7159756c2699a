/**
 * What the page knows of the cluster, polled from the public API: the
 * members and each one's status and health, the leader and its changes,
 * request rates and latencies, and which member the page talks to.
 *
 * Each poll (every second):
 * 1. the member list, from the member in use, else from any member known;
 *    the member in use is asked for its status and health at the same time
 *    (its URL is known before the list is), which saves the first frame a
 *    round trip;
 * 2. every other member's GET /v1/status and GET /health, in parallel, each
 *    bounded by POLL_TIMEOUT_MS, so one member down never stalls the rest;
 * 3. the leader (as the members report it) and a change log of it;
 * 4. the member to use (failover.js), and a banner saying why it changed.
 * Every other poll also reads each member's GET /metrics for the charts.
 */
import { chooseEndpoint, connectionProblem } from './failover.js';
import { requestHistograms, samplePoint } from './metrics.js';

const POLL_MS = 1000;
const POLL_TIMEOUT_MS = 900;
const METRICS_EVERY_POLLS = 2;
/** Five minutes of chart points at one per two seconds. */
const POINTS_MAX = 150;
const LEADER_CHANGES_MAX = 50;
/** How long the banner keeps saying that the page moved to another member. */
const SWITCH_NOTICE_MS = 20_000;

export class Monitor {
  constructor(api) {
    this.api = api;
    /** [{id, name, url, voter, status, healthy, reachable, hasLeader, lastContactMs, error}] */
    this.members = [];
    this.leaderId = undefined;
    /** Whether the page has marked its first full render (its load time). */
    this.readyMarked = false;
    /** [{atMs, term, id, name}], newest last; id null while no leader is known. */
    this.leaderChanges = [];
    /** [{t (s), read: {rate, p50, p99}, write: …, watch: …}] */
    this.points = [];
    /** {level: 'error'|'warn'|'info', text, atMs} or undefined. */
    this.banner = undefined;
    this.polls = 0;
    this.histograms = new Map();
    this.histogramsAtMs = 0;
    this.listeners = new Set();
    this.timer = undefined;
    this.stopped = true;
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit() {
    for (const fn of this.listeners) fn();
    if (!this.readyMarked && this.leaderId != null && this.members.length > 0) {
      if (this.members.every((m) => m.reachable)) {
        this.readyMarked = true;
        // The page's load time, as the browser sees it: navigation start to the
        // first frame that shows every member and the leader (docs: Dashboard).
        globalThis.requestAnimationFrame?.(() => performance.mark('raftkv-dashboard-ready'));
      }
    }
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = async () => {
      if (this.stopped) return;
      try {
        await this.pollOnce();
      } catch (err) {
        this.banner = { level: 'error', text: `dashboard error: ${err.message}`, atMs: Date.now() };
      }
      this.emit();
      if (!this.stopped) this.timer = setTimeout(loop, POLL_MS);
    };
    loop();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** The member in use, from the list. */
  current() {
    return this.members.find((m) => m.url === this.api.base);
  }

  leader() {
    return this.members.find((m) => m.id === this.leaderId);
  }

  async fetchMembers() {
    const tried = new Set();
    for (const base of [this.api.base, ...this.members.map((m) => m.url)]) {
      if (base === undefined || tried.has(base)) continue;
      tried.add(base);
      try {
        // Serializable: the list is wanted most when a member has lost its leader.
        const r = await this.api.call('GET', '/v1/cluster/members?consistency=serializable', {
          base,
          timeoutMs: POLL_TIMEOUT_MS,
        });
        if (r.status === 401) return { unauthorized: true };
        if (r.ok) return r.body;
      } catch {
        // Unreachable: try the next member.
      }
    }
    return undefined;
  }

  async pollOnce() {
    performance.mark('poll');
    const nowMs = Date.now();
    const here = this.api.base;
    const hereProbe = this.probe(here);
    // Settled by probe(); a failed probe reads as unreachable below.
    const list = await this.fetchMembers();
    if (list?.unauthorized) return;
    if (list === undefined) {
      for (const m of this.members) {
        m.reachable = false;
        m.healthy = false;
      }
      this.banner = {
        level: 'error',
        text: 'No member is reachable: the page keeps trying every member it knows.',
        atMs: nowMs,
      };
      return;
    }
    const previous = new Map(this.members.map((m) => [m.id, m]));
    this.members = await Promise.all(
      list.members.map((m) =>
        this.pollMember(
          m,
          previous.get(m.id),
          nowMs,
          m.clientUrls[0] === here ? hereProbe : undefined,
        ),
      ),
    );
    this.noteLeader(list.leader, nowMs);
    this.failover(nowMs);
    this.polls++;
    if (this.polls % METRICS_EVERY_POLLS === 1) {
      // Shown as soon as known; the charts follow when the metrics come in.
      this.emit();
      await this.sampleMetrics(nowMs);
    }
  }

  /** One member's GET /v1/status and GET /health, both settled. */
  probe(url) {
    return Promise.allSettled([
      this.api.call('GET', '/v1/status', { base: url, timeoutMs: POLL_TIMEOUT_MS }),
      this.api.call('GET', '/health', { base: url, timeoutMs: POLL_TIMEOUT_MS }),
    ]);
  }

  /** `probed`: the member's probe already under way, if any. */
  async pollMember(m, before, nowMs, probed) {
    const url = m.clientUrls[0];
    const row = {
      id: m.id,
      name: m.name,
      url,
      voter: m.role !== 'learner',
      status: undefined,
      healthy: false,
      reachable: false,
      hasLeader: false,
      lastContactMs: before?.lastContactMs,
      error: undefined,
    };
    if (url === undefined) {
      row.error = 'no client URL published yet';
      return row;
    }
    const [status, health] = await (probed ?? this.probe(url));
    if (status.status === 'fulfilled' && status.value.ok) {
      row.status = status.value.body;
      row.reachable = true;
      row.hasLeader = row.status.leader !== null;
      row.lastContactMs = nowMs;
    } else {
      row.error =
        status.status === 'rejected'
          ? 'unreachable'
          : (status.value.body?.error?.message ?? `HTTP ${status.value.status}`);
    }
    row.healthy = health.status === 'fulfilled' && health.value.ok;
    if (health.status === 'fulfilled' && !health.value.ok && row.reachable) {
      row.error = `unhealthy: ${health.value.body?.reason ?? health.value.status}`;
    }
    return row;
  }

  noteLeader(listed, nowMs) {
    // The members' own word wins over the list's (the list comes from one member only).
    const reported = this.members.find((m) => m.reachable && m.status.leader !== null);
    const id = reported?.status.leader ?? listed ?? null;
    if (id === this.leaderId) return;
    this.leaderId = id;
    const leader = this.members.find((m) => m.id === id);
    this.leaderChanges.push({
      atMs: nowMs,
      term: leader?.status?.term ?? reported?.status.term,
      id,
      name: leader?.name ?? (id === null ? null : id),
    });
    if (this.leaderChanges.length > LEADER_CHANGES_MAX) this.leaderChanges.shift();
  }

  failover(nowMs) {
    const here = this.current();
    const states = this.members
      .filter((m) => m.url !== undefined)
      .map((m) => ({ url: m.url, name: m.name, reachable: m.reachable, hasLeader: m.hasLeader }));
    const problem = connectionProblem(here ?? undefined);
    const next = chooseEndpoint(this.api.base, states);
    if (next !== this.api.base) {
      const to = this.members.find((m) => m.url === next);
      const why = problem ?? `${this.api.base} is not a member`;
      this.api.base = next;
      this.banner = {
        level: 'warn',
        text: `${why}: reconnected to ${to?.name ?? next} (${next}).`,
        atMs: nowMs,
        switched: true,
      };
      for (const fn of this.listeners) fn('endpoint');
    } else if (problem !== undefined) {
      this.banner = {
        level: 'error',
        text: `${problem}, and no other member is better: retrying.`,
        atMs: nowMs,
      };
    } else if (
      this.banner &&
      !(this.banner.switched && nowMs - this.banner.atMs < SWITCH_NOTICE_MS)
    ) {
      this.banner = undefined;
    }
  }

  async sampleMetrics(nowMs) {
    const readings = new Map();
    await Promise.all(
      this.members
        .filter((m) => m.reachable)
        .map(async (m) => {
          try {
            const text = await this.api.text('/metrics', {
              base: m.url,
              timeoutMs: POLL_TIMEOUT_MS,
            });
            readings.set(m.id, requestHistograms(text));
          } catch {
            // This member's requests are missing from this point.
          }
        }),
    );
    if (this.histogramsAtMs > 0) {
      const point = samplePoint(this.histograms, readings, (nowMs - this.histogramsAtMs) / 1000);
      this.points.push({ t: nowMs / 1000, ...point });
      if (this.points.length > POINTS_MAX) this.points.shift();
    }
    this.histograms = readings;
    this.histogramsAtMs = nowMs;
  }
}
