/**
 * `ipckit tour`: the narrated chapters, as text and as JSON lines, and that
 * the tour removes everything it created.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { all, jsonLines, launch, ok, tourLeftovers } from './helpers/cli.js';
import { waitUntil } from './helpers/assert.js';
import { ObjectTracker, namedSemaphoreExists, posixQueueExists, sysvQueueKeys, sysvSemaphoreKeys } from './helpers/objects.js';
import { killAllPeers, runningChildren } from './helpers/peer.js';

const objects = new ObjectTracker();

/** The pids of the processes whose command line mentions `text` (the tour's children name its objects). */
function processesNaming(text: string): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text);
    } catch {
      return false; // It exited meanwhile.
    }
  }).map(Number);
}

/** The --json events of a tour of one chapter, checked: the first opens it, each is a chapter, explain or step event of it. */
function chapterEvents(stdout: string, heading: string): Record<string, unknown>[] {
  const events = jsonLines(stdout);
  assert.deepEqual(events[0], { chapter: heading, ms: events[0]!.ms, event: 'chapter', title: heading });
  for (const e of events) {
    assert.ok(['chapter', 'explain', 'step'].includes(e.event as string), JSON.stringify(e));
    assert.equal(e.chapter, heading);
    assert.equal(typeof e.ms, 'number');
  }
  return events;
}

/** A tour's --json steps, with each process labelled by the order it first speaks (child1, child2, ...) wherever its pid appears, and durations as N. */
function labelledSteps(tourPid: number, events: Record<string, unknown>[]): { seen: string[]; labels: Map<number, string> } {
  const steps = events.filter((e) => e.event === 'step') as { process: string; pid: number; text: string }[];
  assert.ok(steps.filter((e) => e.process === 'tour').every((e) => e.pid === tourPid));
  const labels = new Map<number, string>([[tourPid, 'tour']]);
  for (const e of steps) if (!labels.has(e.pid)) labels.set(e.pid, `child${labels.size}`);
  const pids = new RegExp(`\\b(${[...labels.keys()].join('|')})\\b`, 'g');
  const seen = steps.map((e) => `${labels.get(e.pid)}: ${e.text.replace(pids, (pid) => `<${labels.get(Number(pid))}>`)
    .replace(/\d+(\.\d+)? (ms|µs)\b/g, 'N $2')}`);
  return { seen, labels };
}

after(async () => {
  await killAllPeers();
  objects.cleanup();
});

describe('ipckit tour', () => {
  it('narrates the message-queue chapter, as text and as JSON lines, and removes everything it created', async () => {
    // The two tours use their own names and keys, so they may run side by side.
    const [text, asJson] = await all([() => ok(['tour']), () => ok(['tour', 'mq', '--json'])]);
    const heading = 'Message queues: a mailbox kept by the kernel';

    const out = text!.stdout;
    assert.ok(out.startsWith(`\n=== ${heading} ===\n`), out.slice(0, 200));
    // The shared-memory chapter: a child's write seen in the parent's mapping, the race and its cure,
    // and recovery from a killed lock holder; none of its segments remain.
    assert.ok(out.includes('\n=== Shared memory: the same memory in two processes, and the lock it needs ===\n'));
    assert.ok(out.includes('reads its own mapping: "written by the child"'));
    assert.match(out, /with the segment's Mutex: counter = 400000: none lost/);
    assert.match(out, /lock\(\) failed with ERR_IPC_OWNER_DIED, holding the lock/);
    assert.deepEqual(tourLeftovers(text!.pid).filter((left) => left.startsWith('/dev/shm/')), []);
    // The semaphores chapter (checked step by step below, as JSON): a named semaphore between two processes,
    // and what SIGKILL does to a take with undo and without; its named semaphore and set are removed.
    assert.ok(out.includes('\n=== Semaphores: counters the kernel keeps, and a holder that dies ===\n'));
    assert.match(out, /\] took semaphore 0, \d+ ms after the kills: the kernel gave it back when pid \d+ died\n/);
    assert.match(out, /\] values 1, 0; the last to change them: pid \d+, pid \d+ \(dead\)\n/);
    const semKey = /\] created System V semaphore set (0x[0-9a-f]{8}) /.exec(out)?.[1];
    assert.ok(semKey !== undefined && out.includes(`] removed ${semKey}\n`), out);
    assert.equal(sysvSemaphoreKeys().has(Number(semKey)), false);
    // The pipes chapter: sort fed through a pipe, EPIPE as an error, and a FIFO met by a CLI reader.
    assert.ok(out.includes('\n=== Pipes and FIFOs: one-way byte streams ===\n'));
    assert.ok(out.includes('printed "apple\\nfig\\npear\\n"'));
    assert.match(out, /closed: EPIPE, an error, not a killed process/);
    assert.match(out, /printed "first line", "second line"/);
    assert.equal(existsSync(`${tmpdir()}/ipckit-tour-fifo-${text!.pid}`), false);
    // The signals chapter: the sender's pid and a sigqueue value, merging against queueing, and a handled SIGINT.
    assert.ok(out.includes('\n=== Signals: a notification, with the sender\'s name on it ===\n'));
    assert.ok(out.includes(`] got SIGUSR2 from pid ${text!.pid} (uid ${process.getuid!()}) by kill\n`));
    assert.ok(out.includes(`] got SIGRTMIN+1 from pid ${text!.pid} (uid ${process.getuid!()}) by sigqueue, value 42\n`));
    assert.match(out, /\] got SIGUSR2, SIGRTMIN\+1=1, SIGRTMIN\+1=2, SIGRTMIN\+1=3; then ERR_IPC_TIMEOUT waiting for the rest \(exit 1\)\n/);
    assert.ok(out.includes('  1 SIGUSR2 out of 3 arrived; 3 SIGRTMIN+1 out of 3 did, values 1, 2, 3.'));
    assert.ok(out.includes(`] its handler ran: SIGINT from pid ${text!.pid}; cleaning up for 200 ms\n`));
    assert.match(out, /\] cleaned up, exited 130\n/);
    // The sockets chapter (test/cli-socket.test.ts checks it line by line): its socket file is gone.
    assert.ok(out.includes('\n=== Sockets: two-way connections, on one machine and across machines ===\n'));
    assert.ok(out.includes(`] closed the server; its socket file ${tmpdir()}/ipckit-tour-sock-${text!.pid} is removed\n`));
    assert.equal(existsSync(`${tmpdir()}/ipckit-tour-sock-${text!.pid}`), false);
    // The servers chapter: the blocking server stalls behind an idle connection, the event server does not;
    // SIGTERM stops each, with the blocking server's child, and removes its socket file.
    assert.ok(out.includes('\n=== Servers: many clients at once, and the blocking server that cannot serve them ===\n'));
    const chapter = out.slice(out.indexOf('\n=== Servers:'), out.indexOf('\n=== Channels:'));
    const stepsOf = (part: string): string[] => part.split('\n').filter((line) => line.startsWith('  [')).map((line) => line.slice(line.indexOf('] ') + 2));
    const [blockingSteps, eventSteps] = chapter.split('\n  Strategy event.\n').map(stepsOf);
    const blockingChild = /^listening on unix:\S+-blocking; its child (\d+) accepts and serves the connections, one at a time$/.exec(blockingSteps![1]!);
    assert.ok(blockingChild, chapter);
    assert.deepEqual(blockingSteps!.slice(2, 5), [
      'connection 1: connected, and sends nothing (a slow client)',
      'connection 2: sent "anyone there?", waits up to 2000 ms for the echo while connection 1 stays open',
      'connection 2: no reply after 2000 ms; the tour hangs up connection 1',
    ], chapter);
    assert.match(blockingSteps![5]!, /^connection 2: "anyone there\?" came back \d+\.\d ms after the hang-up, \d+ ms after it was sent$/, chapter);
    assert.equal(blockingSteps!.at(-1), `exited 0: its child ${blockingChild[1]} was stopped and reaped (no zombie left); socket file removed`, chapter);
    assert.match(eventSteps![1]!, /^listening on unix:\S+-event; it serves every connection itself$/, chapter);
    assert.match(eventSteps![4]!, /^connection 2: "anyone there\?" came back after \d+\.\d ms, while connection 1 was still open$/, chapter);
    assert.equal(eventSteps!.at(-1), 'exited 0: it had no child; socket file removed', chapter);
    for (const strategy of ['blocking', 'event']) assert.equal(existsSync(`${tmpdir()}/ipckit-tour-serve-${text!.pid}-${strategy}`), false);
    // The channels chapter (checked step by step below, as JSON): a full ring holds its sender, a killed
    // producer is reported to its waiting consumer, and the chapter's three channels are removed.
    const channels = out.slice(out.indexOf('\n=== Channels: messages through shared memory, with no system call per message ===\n'), out.indexOf('\nTour complete'));
    assert.ok(channels.length > 0, out);
    assert.match(channels, new RegExp(`\\] depth 16 messages \\(256 of 256 bytes\\); sent 17, received 1; producer: pid \\d+, consumer: pid ${text!.pid}\\n`));
    assert.match(channels, /\] exited 1 \d+ ms later: ERR_IPC_PEER_DEAD: /);
    assert.match(channels, /\] over the channels: median round trip \d+\.\d µs\n/);
    assert.ok(channels.endsWith(`] exited 0: /dev/shm/ipckit-tour-chan-${text!.pid} is gone\n`), channels);
    assert.deepEqual(processesNaming(`ipckit-tour-chan-${text!.pid}`), []);
    // Nor are its network namespaces, where it could make them (root, with ip(8)).
    assert.equal((spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '').includes(`ipckit-tour-${text!.pid}-`), false);
    assert.ok(out.endsWith('\nTour complete: every object it created has been removed.\n'));
    assert.ok(out.includes(`] created /ipckit-tour-${text!.pid}: 4 messages of at most 256 bytes, mode 0600\n`));
    assert.ok(out.includes(`] unlinked /ipckit-tour-${text!.pid}\n`));
    const created = /\] created System V queue (0x[0-9a-f]{8}) \(id \d+\)\n/.exec(out);
    assert.ok(created, 'the tour names its System V queue');
    assert.ok(out.includes(`] removed ${created[1]}\n`));

    const events = chapterEvents(asJson!.stdout, heading);
    assert.ok(events.length > 20);
    const steps = events.filter((e) => e.event === 'step').map((e) => e.text as string);
    assert.deepEqual(steps.filter((t) => /^received ".*" \(priority \d+\)$/.test(t)), [
      'received "server room on fire" (priority 9)', 'received "routine report" (priority 1)', 'received "lunch is ready" (priority 0)',
    ]);
    assert.deepEqual(steps.filter((t) => t.startsWith('received type ')), [
      'received type 2: "job: resize photo"', 'received type 2: "job: send mail"',
      'received type 1: "log: disk at 80%"', 'received type 3: "alert: fan failed"',
    ]);
    assert.ok(steps.includes(`unlinked /ipckit-tour-${asJson!.pid}`));
    assert.ok(events.filter((e) => e.process === 'tour').every((e) => e.pid === asJson!.pid));
    const jsonKey = steps.map((t) => /^created System V queue (0x[0-9a-f]{8}) /.exec(t)?.[1]).find((k) => k !== undefined);
    assert.ok(jsonKey);
    assert.ok(steps.includes(`removed ${jsonKey}`));

    // Nothing is left: not the two POSIX queues, not the two System V queues, nor any other object
    // either tour made (its segments and FIFO; System V objects it created in the tour's key range).
    // Other tours may run meanwhile: their objects are not these tours' leftovers.
    for (const pid of [text!.pid, asJson!.pid]) assert.equal(posixQueueExists(`/ipckit-tour-${pid}`), false);
    const keys = sysvQueueKeys();
    assert.equal(keys.has(Number(created[1])), false);
    assert.equal(keys.has(Number(jsonKey)), false);
    assert.deepEqual([...tourLeftovers(text!.pid), ...tourLeftovers(asJson!.pid)], []);
  });
});

describe('ipckit tour channel', () => {
  it('narrates each step with its process, removes its channels, and leaves no process behind', async () => {
    const r = await ok(['tour', 'channel', '--json']);
    const heading = 'Channels: messages through shared memory, with no system call per message';
    const events = chapterEvents(r.stdout, heading);
    const steps = events.filter((e) => e.event === 'step') as { text: string }[];
    // Durations, which differ from run to run, as N.
    const { seen, labels } = labelledSteps(r.pid, events);
    const name = '/ipckit-tour-chan-<tour>';
    const rest = [...Array.from({ length: 15 }, (_, i) => `"job ${i + 2}"`), '"one more"'].join(', ');
    const expected = [
      `tour: created ${name}: a ring of 256 bytes, messages of at most 120 bytes, mode 0600`,
      `child1: $ ipckit channel recv ${name} --follow`,
      'child1: took the consumer role; the ring is empty, so it sleeps (no CPU) until a message comes',
      `child2: $ ipckit channel stat ${name} --json`,
      'child2: depth 0 messages (0 of 256 bytes); sent 0, received 0; producer: nobody, consumer: pid <child1>',
      `child3: $ ipckit channel send ${name} "resize photo-17.jpg"`,
      'child3: took the producer role, sent "resize photo-17.jpg", and exited 0, giving the role back',
      'child1: woke and printed "resize photo-17.jpg"',
      'tour: kill(<child1>, SIGTERM)',
      'child1: ended by SIGTERM; the channel still names pid <child1> as its consumer, a dead one',
      'tour: took the dead consumer\'s role over (tryReceive() found nothing), and now reads nothing: a slow consumer',
      'tour: with another handle, trySend() succeeded 16 times, then returned false: the ring is full ' +
        '(a message takes an 8-byte header and its bytes, padded to 8: 16 bytes here)',
      'tour: closed that handle, which gives the producer role back',
      `child4: $ ipckit channel send ${name} "one more" --json`,
      'child4: took the producer role; the ring is full, so it sleeps until there is room',
      `child5: $ ipckit channel stat ${name} --json`,
      'child5: depth 16 messages (256 of 256 bytes); sent 17, received 1; producer: pid <child4>, consumer: pid <tour>',
      'tour: received "job 1": room for one message',
      'child4: woke, sent "one more", and exited 0 N ms later',
      `tour: received the other 16: ${rest}`,
      'tour: closed that handle, which gives the consumer role back',
      `child6: $ node -e '…Channel.open("${name}").send("last words")…'   (and it stays)`,
      'child6: sent "last words" and holds the producer role',
      `child7: $ ipckit channel recv ${name} --follow`,
      'child7: printed "last words"; the ring is empty, so it sleeps',
      'tour: kill(<child6>, SIGKILL)',
      // The rest of the line is the consumer's error message, as src/channel.ts words it.
      `child7: exited 1 N ms later: ERR_IPC_PEER_DEAD: The producer of ${name} (thread <child6>) died`,
      `tour: created ${name}-ping and ${name}-pong, 4096 bytes each`,
      `child8: $ node -e '…receive on ${name}-ping, send it back on ${name}-pong…'`,
      'child9: $ node -e \'process.on("message", (m) => process.send(m))\'',
      'tour: over the channels: median round trip N µs',
      'tour: over child_process IPC: median round trip N µs',
      `tour: removed ${name}-ping and ${name}-pong`,
      `child10: $ ipckit channel rm ${name}`,
      'child10: exited 0: /dev/shm/ipckit-tour-chan-<tour> is gone',
    ];
    const deadAt = expected.findIndex((line) => line.includes('ERR_IPC_PEER_DEAD'));
    assert.ok(seen[deadAt]?.startsWith(expected[deadAt]!), seen.join('\n'));
    assert.deepEqual([...seen.slice(0, deadAt), expected[deadAt], ...seen.slice(deadAt + 1)], expected);

    // The two medians were measured (whichever is shorter), and compared in words.
    const medians = steps.map((e) => /median round trip (\d+\.\d) µs$/.exec(e.text)?.[1]).filter((m) => m !== undefined).map(Number);
    assert.equal(medians.length, 2);
    assert.ok(medians.every((m) => m > 0), String(medians));
    const explained = events.filter((e) => e.event === 'explain').map((e) => e.text as string);
    assert.equal(explained.filter((t) => /^Here and now the channel's round trip was \d+\.\d× (shorter|longer)\.$/.test(t)).length, 1, explained.join('\n'));

    assert.deepEqual(tourLeftovers(r.pid), []);
    assert.deepEqual(processesNaming(`ipckit-tour-chan-${r.pid}`), []);
    assert.deepEqual([...labels.keys()].filter((pid) => pid !== r.pid && existsSync(`/proc/${pid}`)), []);
  });
});

describe('ipckit tour sem', () => {
  it('narrates a named semaphore between two processes and undo against a SIGKILL, step by step, and removes what it made', async () => {
    const r = await ok(['tour', 'sem', '--json']);
    const heading = 'Semaphores: counters the kernel keeps, and a holder that dies';
    const events = chapterEvents(r.stdout, heading);
    const { seen, labels } = labelledSteps(r.pid, events);
    const created = seen.map((line) => /^tour: created System V semaphore set (0x7e[0-9a-f]{6}) \(id (\d+)\): /.exec(line)).find((m) => m !== null);
    assert.ok(created, seen.join('\n'));
    const [, key, id] = created;
    const name = '/ipckit-tour-sem-<tour>';
    assert.deepEqual(seen, [
      `tour: created ${name} with the value 1, mode 0600 (the file /dev/shm/sem.ipckit-tour-sem-<tour>)`,
      'tour: wait(): took it; the value is 0',
      `child1: $ ipckit sem wait ${name} --timeout 10000 --json`,
      `child1: found the value 0: it sleeps, and ${name} counts 1 waiter`,
      'tour: post(): gave it back',
      'child1: woke, printed {"taken":1} and exited 0, N ms after the post',
      'tour: the value is 0: the child exited holding it, and nothing gave it back',
      `child2: $ ipckit sem post ${name}`,
      'child2: exited 0; the value is 1 again',
      `tour: unlinked ${name}`,
      `tour: created System V semaphore set ${key} (id ${id}): 2 semaphores, both 1`,
      `child3: $ node -e '…SemaphoreSet.open(${key}).opSync({ index: 0, delta: -1, undo: true })…'   (and it stays)`,
      'child3: took semaphore 0 with undo, and holds it',
      `child4: $ node -e '…SemaphoreSet.open(${key}).opSync({ index: 1, delta: -1 })…'   (and it stays)`,
      'child4: took semaphore 1 without undo, and holds it',
      `child5: $ ipckit sem stat ${key} --json`,
      'child5: values 0, 0; the last to change them: pid <child3>, pid <child4>',
      'tour: waits to take semaphore 0, with undo (the event loop stays free); the kernel counts 1 process waiting',
      'tour: kill(<child3>, SIGKILL) and kill(<child4>, SIGKILL)',
      'tour: took semaphore 0, N ms after the kills: the kernel gave it back when pid <child3> died',
      'tour: a wait of N ms for semaphore 1 failed with ERR_IPC_TIMEOUT: pid <child4> died holding it, and nothing gives it back',
      'tour: gave semaphore 0 back (a post with undo, which cancels the record its take made)',
      `child6: $ ipckit sem stat ${key} --json`,
      'child6: values 1, 0; the last to change them: pid <tour>, pid <child4> (dead)',
      `child7: $ ipckit sem post ${key} --index 1`,
      'child7: exited 0: semaphore 1 is 1 again, given back by hand',
      `tour: removed ${key}`,
    ]);
    const explained = events.filter((e) => e.event === 'explain').map((e) => e.text as string).join('\n');
    assert.match(explained, /The third answer is the Mutex inside a shared segment/);
    assert.deepEqual(tourLeftovers(r.pid), []);
    assert.equal(sysvSemaphoreKeys().has(Number(key)), false);
    assert.deepEqual([...labels.keys()].filter((pid) => pid !== r.pid && existsSync(`/proc/${pid}`)), []);
  });

  it('interrupted (SIGINT) while its children wait or hold, it removes the semaphores, ends its children and exits 130', async () => {
    // Stopped at two moments: a CLI child asleep on the named semaphore, and two node children holding the set.
    const stopWhen = ['found the value 0: it sleeps', 'took semaphore 1 without undo, and holds it'];
    const runs = await all(stopWhen.map((moment) => async () => {
      const run = launch(['tour', 'sem', '--json']);
      let printed = '';
      run.child.stdout!.on('data', (chunk: Buffer) => {
        const before = printed;
        printed += chunk.toString('latin1');
        if (!before.includes(moment) && printed.includes(moment)) run.child.kill('SIGINT');
      });
      const r = await run.done;
      return { moment, r, printed: r.stdout };
    }));
    for (const { moment, r, printed } of runs) {
      assert.deepEqual([r.status, r.signal, r.stderr], [130, null, ''], `${moment}: ${printed}`);
      assert.ok(printed.includes(moment), printed);
      const key = /created System V semaphore set (0x[0-9a-f]{8})/.exec(printed)?.[1];
      if (key !== undefined) assert.equal(sysvSemaphoreKeys().has(Number(key)), false, `${key} is left`);
      assert.equal(namedSemaphoreExists(`/ipckit-tour-sem-${r.pid}`), false);
      assert.deepEqual(tourLeftovers(r.pid), []);
      // Its children were stopped (the CLI waiter by SIGTERM, the holders by SIGKILL): none outlives it for long.
      const children = [`ipckit-tour-sem-${r.pid}`, ...(key === undefined ? [] : [String(Number(key))])];
      await waitUntil(`no process names ${children.join(' or ')}`, () => children.every((text) => processesNaming(text).length === 0));
    }
    assert.equal(runs[1]!.printed.includes('created System V semaphore set'), true);
  });
});

describe('cli tour cleanup', () => {
  it('leaves no queue and no child process behind', async () => {
    await killAllPeers();
    assert.equal(runningChildren(), 0);
    assert.deepEqual(objects.leftovers(), []);
  });
});
