/** fast-check generators for wire messages: every field, optional ones present or absent. */
import fc from 'fast-check';
import type { Entry, Message, Snapshot } from '../../src/raft/messages.js';
import { WIRE_MESSAGE_TYPES } from '../../src/transport/codec.js';

/** Non-negative safe integers, biased toward varint length boundaries. */
export const arbNat: fc.Arbitrary<number> = fc.oneof(
  fc.nat({ max: 300 }),
  fc.maxSafeNat(),
  fc.constantFrom(127, 128, 16_383, 16_384, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 49, 2 ** 53 - 1),
);

/** Ids and contexts: short, any well-formed Unicode (lone surrogates cannot be UTF-8). */
export const arbId: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('n1', 'n2', 'n3', ''),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
);

/** Ordinary objects, like the ones Raft builds (fast-check defaults to null prototypes). */
const plain = { noNullPrototype: true } as const;

const arbEntry: fc.Arbitrary<Entry> = fc.record(
  {
    term: arbNat,
    index: arbNat,
    type: fc.constantFrom('normal' as const, 'confChange' as const),
    data: fc.uint8Array({ maxLength: 48 }),
  },
  plain,
);

const arbSnapshot: fc.Arbitrary<Snapshot> = fc.record(
  {
    metadata: fc.record(
      {
        index: arbNat,
        term: arbNat,
        confState: fc.record(
          {
            voters: fc.array(arbId, { maxLength: 5 }),
            learners: fc.array(arbId, { maxLength: 3 }),
          },
          plain,
        ),
      },
      plain,
    ),
    data: fc.uint8Array({ maxLength: 256 }),
  },
  plain,
);

export const arbMessage: fc.Arbitrary<Message> = fc
  .record(
    {
      type: fc.constantFrom(...WIRE_MESSAGE_TYPES),
      from: arbId,
      to: arbId,
      term: arbNat,
      logTerm: arbNat,
      index: arbNat,
      entries: fc.array(arbEntry, { maxLength: 4 }),
      commit: arbNat,
      reject: fc.boolean(),
      rejectHint: arbNat,
      snapshot: arbSnapshot,
      readRound: arbNat,
      readCtx: fc.string({ unit: 'grapheme', maxLength: 20 }),
      transfer: fc.boolean(),
    },
    {
      ...plain,
      requiredKeys: [
        'type',
        'from',
        'to',
        'term',
        'logTerm',
        'index',
        'entries',
        'commit',
        'reject',
        'rejectHint',
      ],
    },
  )
  .chain((m) =>
    // Half the time, the usual append shape: entries numbered on from index + 1.
    fc.boolean().map((contiguous) => {
      if (!contiguous || m.index + m.entries.length >= Number.MAX_SAFE_INTEGER) return m;
      return { ...m, entries: m.entries.map((e, i) => ({ ...e, index: m.index + 1 + i })) };
    }),
  );

export const arbBatch: fc.Arbitrary<Message[]> = fc.array(arbMessage, { maxLength: 8 });
