/**
 * One clear sentence for a request that fails its JSON schema, naming the
 * field and the problem: `body has an unknown field "foo" (known fields:
 * value, lease, prevRevision, prevValue)`, `body.ttl must be an integer, not
 * a string`, `body.success[0] is missing the required field "value"`.
 *
 * fastify hands over ajv's errors. With `allErrors: false` ajv stops at the
 * first failing keyword, so the LAST error is the one that decided; a `oneOf`
 * keyword first lists the failures of each of its branches, and we report
 * the failure of the branch the data was meant for (see `oneOfMessage`).
 * ajv runs with `verbose: true`, so each error carries its schema and data.
 *
 * A wrong type is described by its type name, never its value (a password
 * sent as a number must not come back in an error or a log line); values are
 * echoed only for enum, const, minimum and maximum failures.
 */

/** The fields of an ajv error (ajv's ErrorObject, with `verbose: true`) that we read. */
export interface SchemaError {
  keyword: string;
  /** JSON pointer to the offending value in the validated data, e.g. `/success/0/op`. */
  instancePath: string;
  /** JSON pointer into the schema, e.g. `#/properties/success/items/oneOf/0/required`. */
  schemaPath: string;
  params: Record<string, unknown>;
  message?: string | undefined;
  /** verbose: the keyword's value in the schema (for oneOf: the branches). */
  schema?: unknown;
  /** verbose: the schema object holding the keyword. */
  parentSchema?: Record<string, unknown> | undefined;
  /** verbose: the data at instancePath. */
  data?: unknown;
}

/** The message for a failed validation of `dataVar` ('body', 'querystring', 'params', 'headers'). */
export function validationMessage(errors: readonly SchemaError[], dataVar: string): string {
  const decisive = errors[errors.length - 1];
  if (decisive === undefined) return `${dataVar} is invalid`;
  return messageOf(decisive, errors.slice(0, -1), dataVar);
}

function messageOf(error: SchemaError, before: readonly SchemaError[], dataVar: string): string {
  const path = pathOf(dataVar, error.instancePath);
  const p = error.params;
  switch (error.keyword) {
    case 'required':
      return `${path} is missing the required field ${quote(p.missingProperty)}`;
    case 'additionalProperties': {
      const known = Object.keys(
        (error.parentSchema?.properties as Record<string, unknown> | undefined) ?? {},
      );
      const hint = known.length > 0 ? ` (known fields: ${known.join(', ')})` : '';
      return `${path} has an unknown field ${quote(p.additionalProperty)}${hint}`;
    }
    case 'type':
      return `${path} must be ${typeNames(p.type)}, not ${typeNameOf(error.data)}`;
    case 'const':
      return `${path} must be ${JSON.stringify(p.allowedValue)}${got(error.data)}`;
    case 'enum':
      return `${path} must be one of ${listOf(p.allowedValues)}${got(error.data)}`;
    case 'minLength':
      return p.limit === 1
        ? `${path} must not be empty`
        : `${path} must be at least ${p.limit} characters long`;
    case 'maxLength':
      return `${path} must be at most ${p.limit} characters long`;
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `${path} must be ${p.comparison} ${p.limit}${got(error.data)}`;
    case 'pattern':
      return `${path} must match the pattern ${p.pattern}`;
    case 'minItems':
      return `${path} must have at least ${p.limit} item${p.limit === 1 ? '' : 's'}`;
    case 'maxItems':
      return `${path} must have at most ${p.limit} item${p.limit === 1 ? '' : 's'}`;
    case 'oneOf':
    case 'anyOf':
      return oneOfMessage(error, before, dataVar);
    default:
      return `${path} ${error.message ?? `fails "${error.keyword}"`}`;
  }
}

/**
 * A value matched none of a oneOf's shapes. Which shape was it meant to be?
 * 1. A property that has a `const` in the branches (txn ops: `op`) decides:
 *    missing or matching no branch, that is the problem; otherwise the branch
 *    whose const it matches.
 * 2. Else the branch that knows the most of the value's fields (txn compares:
 *    `{key, target, op, value}` or `{lock, token}`), if one stands out.
 * 3. Else: say which shapes are accepted.
 * The chosen branch's own failure (listed before the oneOf error) is reported.
 */
function oneOfMessage(error: SchemaError, before: readonly SchemaError[], dataVar: string): string {
  const path = pathOf(dataVar, error.instancePath);
  const branches = Array.isArray(error.schema) ? (error.schema as Record<string, unknown>[]) : [];
  const data = error.data;
  const failureOf = (i: number): string | undefined => {
    const prefix = `${error.schemaPath}/${i}/`;
    const own = before.filter((e) => e.schemaPath.startsWith(prefix));
    const last = own[own.length - 1];
    if (last === undefined) return undefined;
    return messageOf(last, own.slice(0, -1), dataVar);
  };
  if (!isObject(data)) {
    // Every branch wants an object here: the branches' type errors say it once.
    return failureOf(0) ?? `${path} must be an object`;
  }
  let candidates = branches.map((_, i) => i);

  const tag = discriminator(branches);
  if (tag !== undefined) {
    if (!(tag in data)) return `${path} is missing the required field ${quote(tag)}`;
    const allowed = branches.map((b) => propertiesOf(b)[tag]?.const);
    candidates = candidates.filter((i) => allowed[i] === data[tag]);
    if (candidates.length === 0)
      return `${pathOf(dataVar, `${error.instancePath}/${escapePointer(tag)}`)} must be one of ${listOf(allowed)}${got(data[tag])}`;
  }

  if (candidates.length > 1) {
    const fields = Object.keys(data);
    const score = (i: number) => {
      const known = propertiesOf(branches[i]!);
      return fields.filter((f) => f in known).length;
    };
    const best = Math.max(...candidates.map(score));
    const top = candidates.filter((i) => score(i) === best);
    if (best > 0 && top.length === 1) candidates = top;
  }

  if (candidates.length === 1) {
    const failure = failureOf(candidates[0]!);
    if (failure !== undefined) return failure;
  }
  const shapes = candidates.map((i) => `{${Object.keys(propertiesOf(branches[i]!)).join(', ')}}`);
  return `${path} must have one of these forms: ${shapes.join(' or ')}`;
}

/** A property every branch declares with a `const` (like a txn op's `op`), if there is one. */
function discriminator(branches: Record<string, unknown>[]): string | undefined {
  const first = branches[0];
  if (first === undefined) return undefined;
  for (const name of Object.keys(propertiesOf(first))) {
    if (branches.every((b) => propertiesOf(b)[name]?.const !== undefined)) return name;
  }
  return undefined;
}

function propertiesOf(schema: Record<string, unknown>): Record<string, { const?: unknown }> {
  const props = schema.properties;
  return isObject(props) ? (props as Record<string, { const?: unknown }>) : {};
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ------------------------------------------------------------------ wording

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `body` + `/success/0/op` → `body.success[0].op`; odd field names in brackets. */
export function pathOf(dataVar: string, instancePath: string): string {
  if (instancePath === '') return dataVar;
  let out = dataVar;
  for (const raw of instancePath.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(segment)) out += `[${segment}]`;
    else if (IDENTIFIER.test(segment)) out += `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

function quote(value: unknown): string {
  return JSON.stringify(String(value));
}

const ARTICLE: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  object: 'an object',
  array: 'an array',
  null: 'null',
};

/** `string` → "a string"; `string,number,null` (a union) → "a string, a number or null". */
function typeNames(type: unknown): string {
  const names = (Array.isArray(type) ? type : String(type).split(',')).map(
    (t) => ARTICLE[String(t)] ?? String(t),
  );
  return names.length <= 1
    ? (names[0] ?? 'valid')
    : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
}

/** What was sent instead: its JSON type, never its value. */
function typeNameOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number')
    return Number.isInteger(value) ? 'a number' : 'a number with a fraction';
  if (typeof value === 'boolean') return 'a boolean';
  return ARTICLE[typeof value] ?? typeof value;
}

function listOf(values: unknown): string {
  const list = Array.isArray(values) ? values : [values];
  return list.map((v) => JSON.stringify(v)).join(', ');
}

/** `(got "files")` for short scalars, so the sender sees what arrived; nothing for the rest. */
function got(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || value === null)
    return ` (got ${JSON.stringify(value)})`;
  if (typeof value === 'string' && value.length <= 40) return ` (got ${JSON.stringify(value)})`;
  return '';
}
