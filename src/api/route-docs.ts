/**
 * What a route tells the OpenAPI document (GET /v1/openapi.json) about itself,
 * beside the JSON schemas fastify validates with. fastify reads only `body`,
 * `querystring`, `params`, `headers` and `response` of a route's schema; the
 * keys made here (`tags`, `summary`, `description`, and `successStatus`,
 * `produces`, `queryParams` read by openapi.ts) are for the document only and
 * change nothing about how a request is served.
 */

/** The groups of the reference pages, in the order they are shown. */
export const TAGS = {
  kv: 'Keys and values, transactions, compaction (API.md "KV")',
  watch: 'Server-Sent Events streams of changes (API.md "Watch")',
  leases: 'Time-to-live leases that own keys, names, locks and candidacies',
  registry: 'Cluster-wide unique names owned by leases',
  locks: 'Fair distributed locks with fencing tokens',
  elections: 'Leader elections: campaign, observe, proclaim, resign',
  cluster: 'Status, membership and leadership of the cluster',
  auth: 'Users, roles, permissions and tokens (API.md "Security")',
  operations: 'Probes, metrics, backups, alarms and this reference',
} as const;

export type Tag = keyof typeof TAGS;

/** A query parameter a route reads by hand (params.ts), as the document shows it. */
export interface QueryParamDoc {
  readonly schema: Readonly<Record<string, unknown>>;
  readonly description: string;
}

const revisionQuery: QueryParamDoc = {
  schema: { type: 'integer', minimum: 1 },
  description: 'read the store as of this revision (410 `compacted` if it was compacted)',
};
const consistencyQuery: QueryParamDoc = {
  schema: { type: 'string', enum: ['linearizable', 'serializable'], default: 'linearizable' },
  description:
    "linearizable: reflects every write acknowledged before the read; serializable: this node's applied state",
};
const minRevisionQuery: QueryParamDoc = {
  schema: { type: 'integer', minimum: 0 },
  description: 'wait (bounded by the request timeout) until this node has applied revision N',
};
const booleanQuery = (description: string): QueryParamDoc => ({
  schema: { type: 'boolean', default: false },
  description,
});
const fromRevisionQuery: QueryParamDoc = {
  schema: { type: 'integer', minimum: 1 },
  description:
    'replay history from this revision (default: the current revision + 1); a `Last-Event-ID: R` header resumes from R + 1 instead',
};

/**
 * Every query parameter some route accepts. A route names the ones it reads
 * with `queryParams`: the list its handler passes to rejectUnknown()
 * (test/api/openapi.test.ts checks that the two agree).
 */
export const QUERY_PARAMS = {
  revision: revisionQuery,
  consistency: consistencyQuery,
  minRevision: minRevisionQuery,
  prefix: {
    schema: { type: 'string' },
    description: 'only keys (or names) that start with this prefix; empty or absent: all',
  },
  limit: { schema: { type: 'integer', minimum: 1 }, description: 'at most this many keys' },
  after: { schema: { type: 'string' }, description: 'continue a listing after this key' },
  keysOnly: booleanQuery('leave the values out'),
  prefixFlag: booleanQuery('the path names a prefix: every key that starts with it'),
  prevRevision: {
    schema: { type: 'integer', minimum: 0 },
    description:
      'compare-and-swap on modRevision (0: the key must not exist); a false guard is 409',
  },
  fromRevision: fromRevisionQuery,
  prevKv: booleanQuery('each event also carries the key before the change'),
  watch: booleanQuery('stream changes as Server-Sent Events instead of answering once'),
  lease: {
    schema: { type: 'string' },
    description: 'only this lease may unregister the name',
  },
  key: { schema: { type: 'string', minLength: 1 }, description: 'the holder key' },
} as const satisfies Record<string, QueryParamDoc>;

/** A query parameter's name on the wire (`prefixFlag` is the boolean `prefix`). */
export type QueryParam = keyof typeof QUERY_PARAMS;

export function wireName(param: QueryParam): string {
  return param === 'prefixFlag' ? 'prefix' : param;
}

export interface RouteDoc {
  readonly tags: readonly [Tag];
  readonly summary: string;
  readonly description?: string;
  /** The status of a success when the route has no response schema (default 200). */
  readonly successStatus?: readonly number[];
  /** Content types of a success when it is not JSON (streams, backups, metrics). */
  readonly produces?: readonly string[];
  readonly queryParams?: readonly QueryParam[];
}

/** The document's part of a route's schema: its group, one line, and optional details. */
export function routeDoc(
  tag: Tag,
  summary: string,
  more: Omit<RouteDoc, 'tags' | 'summary'> = {},
): RouteDoc {
  return { tags: [tag], summary, ...more };
}
