/**
 * The other process of the channel tests: `node channel-peer.js <role>
 * <name> <json params>`. It reports on stdout, one line per event.
 */
import { Channel } from '../../src/index.js';
import { readRecord, record } from './records.js';

const [asked, name, json] = process.argv.slice(2);
// `<role>-after-line`: says "ready" first (a test that awaits the first line then runs alongside).
const role = asked!.replace(/-after-line$/, '');
const params = JSON.parse(json ?? '{}') as { count?: number; first?: number; maxBody?: number; hold?: 'producer' | 'consumer' };
const ch = Channel.open(name!);
const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
if (role !== asked) say('ready');

switch (role) {
  case 'produce': {
    // Sync and async sends, alternating in runs, so both wait paths take part.
    for (let seq = 0; seq < params.count!; seq++) {
      const data = record(seq, params.maxBody);
      if ((seq >> 10) % 2 === 0) ch.sendSync(data);
      else await ch.send(data);
    }
    say('done');
    break;
  }
  case 'consume': {
    let bad = 0;
    let expected = 0;
    for (let i = 0; i < params.count!; i++) {
      const { data } = (i >> 10) % 2 === 0 ? ch.receiveSync() : await ch.receive();
      const checked = readRecord(data);
      if (!checked.ok || checked.seq !== expected) bad++;
      expected = checked.seq + 1;
    }
    say(JSON.stringify({ received: params.count, bad }));
    break;
  }
  case 'produce-as': {
    // One of several producers: records numbered from params.first, in order.
    for (let i = 0; i < params.count!; i++) {
      const data = record(params.first! + i, params.maxBody);
      if (i % 2 === 0) ch.sendSync(data);
      else await ch.send(data);
    }
    say('done');
    break;
  }
  case 'consume-until-empty-message': {
    // One of several consumers: takes records until an empty message, and reports the numbers it got, in order.
    const got: number[] = [];
    let bad = 0;
    for (let i = 0; ; i++) {
      const { data } = i % 2 === 0 ? ch.receiveSync() : await ch.receive();
      if (data.length === 0) break;
      const checked = readRecord(data);
      if (!checked.ok) bad++;
      got.push(checked.seq);
    }
    say(JSON.stringify({ got, bad }));
    break;
  }
  case 'hold': {
    // Takes the role and keeps it until killed.
    if (params.hold === 'producer') ch.tryLoan(0);
    else ch.tryReceive();
    say('holding');
    setInterval(() => undefined, 1 << 30);
    await new Promise(() => undefined);
    break;
  }
  case 'flood': {
    // Sends until killed.
    say('flooding');
    for (let seq = 0; ; seq++) ch.sendSync(record(seq, params.maxBody));
  }
  default:
    throw new Error(`unknown role ${role}`);
}
ch.close();
