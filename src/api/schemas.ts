/** JSON schemas of request bodies: unknown fields and wrong types are 400s, never coerced. */

const kvOp = {
  oneOf: [
    {
      type: 'object',
      required: ['op', 'key', 'value'],
      additionalProperties: false,
      properties: {
        op: { const: 'put' },
        key: { type: 'string' },
        value: { type: 'string' },
        lease: { type: 'string' },
      },
    },
    {
      type: 'object',
      required: ['op', 'key'],
      additionalProperties: false,
      properties: { op: { const: 'get' }, key: { type: 'string' }, prefix: { type: 'boolean' } },
    },
    {
      type: 'object',
      required: ['op', 'key'],
      additionalProperties: false,
      properties: { op: { const: 'delete' }, key: { type: 'string' }, prefix: { type: 'boolean' } },
    },
  ],
} as const;

const compare = {
  oneOf: [
    {
      type: 'object',
      required: ['key', 'target', 'op', 'value'],
      additionalProperties: false,
      properties: {
        key: { type: 'string' },
        target: { enum: ['value', 'version', 'createRevision', 'modRevision', 'lease'] },
        op: { enum: ['==', '!=', '<', '>'] },
        value: { type: ['string', 'number', 'null'] },
      },
    },
    {
      type: 'object',
      required: ['lock', 'token'],
      additionalProperties: false,
      properties: {
        lock: { type: 'string', minLength: 1 },
        token: { type: 'integer', minimum: 0 },
      },
    },
  ],
} as const;

export const putBody = {
  type: 'object',
  required: ['value'],
  additionalProperties: false,
  properties: {
    value: { type: 'string' },
    lease: { type: 'string', minLength: 1 },
    prevRevision: { type: 'integer', minimum: 0 },
    prevValue: { type: 'string' },
  },
} as const;

export const txnBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    compare: { type: 'array', items: compare },
    success: { type: 'array', items: kvOp },
    failure: { type: 'array', items: kvOp },
  },
} as const;

export const compactBody = {
  type: 'object',
  required: ['revision'],
  additionalProperties: false,
  properties: { revision: { type: 'integer', minimum: 1 } },
} as const;

export const addMemberBody = {
  type: 'object',
  required: ['name', 'peerUrl', 'clientUrl'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 128 },
    peerUrl: { type: 'string', minLength: 1 },
    clientUrl: { type: 'string', minLength: 1 },
    learner: { type: 'boolean' },
  },
} as const;

export const transferBody = {
  type: 'object',
  additionalProperties: false,
  properties: { to: { type: 'string', minLength: 1 } },
} as const;

// ---- Response bodies (200 only). fastify compiles these once into fast-json-stringify
// serializers, about twice as fast as JSON.stringify for these shapes. Only the fields listed
// here are written, in this order (API.md's): a field added to a result must be added here too.
// Optional fields are left out when undefined, as JSON.stringify does.

const keyValue = {
  type: 'object',
  properties: {
    key: { type: 'string' },
    value: { type: 'string' },
    createRevision: { type: 'number' },
    modRevision: { type: 'number' },
    version: { type: 'number' },
    lease: { type: ['string', 'null'] },
  },
} as const;

/** `GET /v1/kv/{key}` → `{"kv": KV, "revision": R}`. */
export const getReply = {
  type: 'object',
  properties: { kv: keyValue, revision: { type: 'number' } },
} as const;

/** `GET /v1/kv` → `{"kvs": [KV...], "more": bool, "revision": R}`. */
export const rangeReply = {
  type: 'object',
  properties: {
    kvs: { type: 'array', items: keyValue },
    more: { type: 'boolean' },
    revision: { type: 'number' },
  },
} as const;

/** `PUT /v1/kv/{key}` → `{"revision": R, "kv": KV, "prevKv": KV|null}`. */
export const putReply = {
  type: 'object',
  properties: {
    revision: { type: 'number' },
    kv: keyValue,
    prevKv: { ...keyValue, type: ['object', 'null'] },
  },
} as const;

/** `DELETE /v1/kv/{key}` → `{"deleted": n, "revision": R, "prevKvs": [KV...]}`. */
export const deleteReply = {
  type: 'object',
  properties: {
    deleted: { type: 'number' },
    revision: { type: 'number' },
    prevKvs: { type: 'array', items: keyValue },
  },
} as const;

/**
 * `POST /v1/txn` → `{"succeeded", "revision", "results": [Result...]}`. A result is
 * `{op, kv}`, `{op, kvs}` or `{op, deleted}`: one object schema whose fields are all optional
 * writes exactly the ones present (a oneOf would make the serializer validate every item).
 */
export const txnReply = {
  type: 'object',
  properties: {
    succeeded: { type: 'boolean' },
    revision: { type: 'number' },
    results: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          op: { type: 'string' },
          kv: keyValue,
          kvs: { type: 'array', items: keyValue },
          deleted: { type: 'number' },
        },
      },
    },
  },
} as const;
