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
