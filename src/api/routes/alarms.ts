import type { FastifyInstance } from 'fastify';
import { ApiError, sendError, wireCode } from '../errors.js';
import { type Query, rejectUnknown, writeOptionsOf } from '../params.js';
import { routeDoc } from '../route-docs.js';
import type { ApiService } from '../service.js';

const MEMBER_ID = /^[\x21-\x2e\x30-\x7e]{1,128}$/;

/**
 * The space quota's alarms (an addition to API.md, as etcd's Alarm API):
 * `GET /v1/alarms` lists the active ones; `POST /v1/alarms/disarm` clears the
 * nospace alarms, of one member (`{"memberId": "…"}`) or of all (`{}` or no
 * body). A member still over its quota raises its alarm again at its next
 * tick. Both are root's when auth is enabled, as compaction is.
 */
export function alarmRoutes(service: ApiService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    const alarms = routeDoc('operations', 'The active space-quota alarms');
    app.get('/v1/alarms', { schema: alarms, config: { access: 'root' } }, async (req) => {
      rejectUnknown(req.query as Query, []);
      return service.alarms(service.requestDeadline());
    });

    const disarm = routeDoc(
      'operations',
      'Clear the nospace alarms of one member (`{"memberId"}`) or of all',
    );
    app.post(
      '/v1/alarms/disarm',
      { schema: disarm, config: { access: 'root' } },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const memberId = disarmMemberId(req.body);
        const result = await service.disarmAlarms(memberId, writeOptionsOf(req, service));
        if (!result.ok)
          return sendError(reply, wireCode(result.code), result.message, {
            revision: result.revision,
          });
        return { disarmed: result.disarmed, alarms: result.alarms, revision: result.revision };
      },
    );
  };
}

/** The body's memberId (undefined: every member's); `alarm` may name `nospace`, the only type. */
function disarmMemberId(body: unknown): string | undefined {
  if (body === undefined || body === null || body === '') return undefined;
  if (typeof body !== 'object' || Array.isArray(body))
    throw new ApiError('invalid_request', 'the body must be a JSON object');
  const { memberId, alarm, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0)
    throw new ApiError('invalid_request', `unknown field "${unknown[0]}" (memberId, alarm)`);
  if (alarm !== undefined && alarm !== 'nospace')
    throw new ApiError('invalid_request', '"alarm" must be "nospace"');
  if (memberId === undefined) return undefined;
  if (typeof memberId !== 'string' || !MEMBER_ID.test(memberId))
    throw new ApiError('invalid_request', '"memberId" must be a member id');
  return memberId;
}
