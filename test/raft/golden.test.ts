/**
 * Golden interaction test: a scripted scenario rendered as a compact transcript
 * (every message delivered or dropped, then each node's state after each step)
 * and compared with the expected text below. Any change in the core's
 * behaviour shows up as a diff; if the change is intended, review the new
 * transcript line by line and paste it here.
 *
 * Legend: "a->b type tTERM ..." delivered, "X " dropped; app shows
 * "prev INDEX:TERM [INDEX:TERM(payload)...] commit C"; "= " lines are node states.
 */
import t from 'tap';
import { describe, Network } from './helpers.js';

const expected = `
> n1 campaigns
  n1->n2 preVote t2 last 1:1
  n1->n3 preVote t2 last 1:1
  n2->n1 preVoteResp t2 granted
  n3->n1 preVoteResp t2 granted
  n1->n2 vote t2 last 1:1
  n1->n3 vote t2 last 1:1
  n2->n1 voteResp t2 granted
  n3->n1 voteResp t2 granted
  n1->n2 app t2 prev 1:1 [2:2(noop)] commit 1
  n1->n3 app t2 prev 1:1 [2:2(noop)] commit 1
  n2->n1 appResp t2 index 2
  n3->n1 appResp t2 index 2
  n1->n2 app t2 prev 2:2 [] commit 2
  n2->n1 appResp t2 index 2
  = n1 leader t2 vote n1 lead n1 last 2 commit 2 applied 2 state []
  = n2 follower t2 vote n1 lead n1 last 2 commit 2 applied 2 state []
  = n3 follower t2 vote n1 lead n1 last 2 commit 1 applied 1 state []
> propose a, b on n1
  n1->n2 app t2 prev 2:2 [3:2(a)] commit 2
  n1->n3 app t2 prev 2:2 [3:2(a)] commit 2
  n1->n2 app t2 prev 3:2 [4:2(b)] commit 2
  n1->n3 app t2 prev 3:2 [4:2(b)] commit 2
  n2->n1 appResp t2 index 3
  n3->n1 appResp t2 index 3
  n2->n1 appResp t2 index 4
  n3->n1 appResp t2 index 4
  n1->n2 app t2 prev 4:2 [] commit 3
  n1->n3 app t2 prev 4:2 [] commit 3
  n1->n2 app t2 prev 4:2 [] commit 4
  n1->n3 app t2 prev 4:2 [] commit 4
  n2->n1 appResp t2 index 4
  n3->n1 appResp t2 index 4
  n2->n1 appResp t2 index 4
  n3->n1 appResp t2 index 4
  = n1 leader t2 vote n1 lead n1 last 4 commit 4 applied 4 state [a,b]
  = n2 follower t2 vote n1 lead n1 last 4 commit 4 applied 4 state [a,b]
  = n3 follower t2 vote n1 lead n1 last 4 commit 4 applied 4 state [a,b]
> drop everything to n3; propose c
  n1->n2 app t2 prev 4:2 [5:2(c)] commit 4
X n1->n3 app t2 prev 4:2 [5:2(c)] commit 4
  n2->n1 appResp t2 index 5
  n1->n2 app t2 prev 5:2 [] commit 5
X n1->n3 app t2 prev 5:2 [] commit 5
  n2->n1 appResp t2 index 5
  = n1 leader t2 vote n1 lead n1 last 5 commit 5 applied 5 state [a,b,c]
  = n2 follower t2 vote n1 lead n1 last 5 commit 5 applied 5 state [a,b,c]
  = n3 follower t2 vote n1 lead n1 last 4 commit 4 applied 4 state [a,b]
> heal; one heartbeat
  n1->n2 heartbeat t2 commit 5
  n1->n3 heartbeat t2 commit 4
  n2->n1 heartbeatResp t2
  n3->n1 heartbeatResp t2
  n1->n3 app t2 prev 5:2 [] commit 5
  n3->n1 appResp t2 reject 5 hint 4:2
  n1->n3 app t2 prev 4:2 [5:2(c)] commit 5
  n3->n1 appResp t2 index 5
  = n1 leader t2 vote n1 lead n1 last 5 commit 5 applied 5 state [a,b,c]
  = n2 follower t2 vote n1 lead n1 last 5 commit 5 applied 5 state [a,b,c]
  = n3 follower t2 vote n1 lead n1 last 5 commit 5 applied 5 state [a,b,c]
`;

t.test('golden: elect n1, propose a and b, drop to n3, propose c, heal', (t) => {
  const net = new Network(3);
  const out: string[] = [];
  net.trace = out;
  const step = (title: string, f: () => void) => {
    out.push(`> ${title}`);
    f();
    for (const id of net.ids()) out.push(`  = ${describe(net, id)}`);
  };

  step('n1 campaigns', () => net.elect('n1'));
  step('propose a, b on n1', () => {
    net.propose('n1', 'a');
    net.propose('n1', 'b');
    net.stabilize();
  });
  const rule = net.dropTo('n3');
  step('drop everything to n3; propose c', () => {
    net.propose('n1', 'c');
    net.stabilize();
  });
  step('heal; one heartbeat', () => {
    net.removeRule(rule);
    net.tickAll(1);
  });

  t.equal(`\n${out.join('\n')}\n`, expected);
  t.end();
});
