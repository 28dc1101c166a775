/**
 * Chaos: processes killed with SIGKILL mid-flight, every few hundred ms,
 * each replaced at once so that the work goes on.
 *
 * - Messages, per transport: producers and consumers are killed at random.
 *   Every producer process, first or replacement, sends under a ledger slot
 *   of its own; the ledger then tells what the kills cost: lost,
 *   duplicated, reordered, corrupt, and torn (a stream read that returned
 *   part of a message). Over connected sockets the consumers are servers
 *   and only producers (their clients) are killed: a server must drop the
 *   connection a producer died in, even in the middle of a frame, and go on
 *   serving the others, losing nothing they sent.
 * - Mutex: workers loop lock, A += 1, pause, B += 1, unlock on one robust
 *   mutex; the holder of the moment is the preferred victim. The next
 *   locker must take over, repair B = A, markConsistent(); A = B at the end.
 * - Undo lock: the same workers under a System V semaphore taken and given
 *   back with SEM_UNDO. The kernel gives a dead holder's unit back; the
 *   next holder finds the HOLDER word set and repairs; exactly one unit at
 *   the end.
 * - Semaphore, in a segment and named: posters post units one at a time,
 *   waiters take them; either is killed. No unit may appear or vanish
 *   beyond what the kills explain, and no wake-up may be lost.
 *
 * A watchdog fails a run that makes no progress for five seconds with
 * processes alive, and every kernel object, descriptor, mapping and process
 * a run made must be gone when it ends.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { IpcError, Mutex, NamedSemaphore, PosixMessageQueue, Semaphore, SemaphoreSet } from '../src/index.js';
import { Child, listeningAddress } from './exactly-once.js';
import { type ConsumerField, type DeliveryCounts, Ledger, LockLedger } from './ledger.js';
import { type LockerParams, type PeerParams, stopMarker } from './peer.js';
import { type Section, type SectionResult, chosenNames, descriptorMap, fmt, percentile, removeOnInterrupt, runStandalone } from './report.js';
import { type ChannelEndStats, type ServerStats, TRANSPORTS, type Transport, senderAddress } from './transports.js';

const PRODUCERS = 3;
const CONSUMERS = 3;
/**
 * Producer slots of one round's ledger: a replacement producer takes a new
 * slot, so the last message of a killed one (sent or not) is never confused
 * with the first of its successor.
 */
const SLOTS = 256;
/** Messages per slot; a producer that sends them all exits and a new one takes the next slot. */
const SLOT_SEQ = 2 ** 19;
const MUTEX_WORKERS = 4;
const POSTERS = 2;
const WAITERS = 2;
/** A kill every KILL_MIN_MS to KILL_MAX_MS, at random. */
const KILL_MIN_MS = 100;
const KILL_MAX_MS = 400;
/** Share of mutex kills aimed at the holder of the moment (the rest hit any worker, mostly waiters). */
const PREFER_HOLDER = 0.8;
/** No progress for this long while processes are alive: a deadlock. */
const STALL_LIMIT_MS = 5000;
/** How often the watchdog looks at the progress, ms (the resolution of the longest stall). */
const SAMPLE_MS = 10;
/** A replacement producer is started only with at least this much of the round left, ms. */
const MIN_LIFE_MS = 300;
/** Longest round (one set of objects and one ledger); a longer run is several rounds. */
const ROUND_MS = 30_000;
/** What a round needs besides its chaos: starting the processes, draining, checking, ms. */
const ROUND_OVERHEAD_MS = 800;

type Role = PeerParams['role'] | LockerParams['role'];

/** A worker process of a run. */
interface Member {
  role: Role;
  /** Producer slot, consumer index or worker index. */
  slot: number;
  child: Child;
  pid: number;
  /** Told to go: working, and a candidate for a kill. */
  started: boolean;
  /** When the parent sent SIGKILL (process.hrtime, CLOCK_MONOTONIC like the workers' clocks). */
  killedAt?: bigint;
  exited: Promise<void>;
}

/**
 * The processes of one round: starts them (ready, then go), kills them, and
 * hands every exit to the round, which decides on a replacement.
 */
class Crew {
  readonly live = new Set<Member>();
  readonly pids: number[] = [];
  readonly killTimes = new Map<number, bigint>();
  readonly kills = new Map<Role, number>();
  readonly failures: string[] = [];
  /** Called on every exit, after `onExit`. */
  onChange = (): void => {};
  readonly #all: Member[] = [];
  readonly #pending = new Set<Promise<unknown>>();
  #closed = false;

  constructor(readonly label: string, readonly onExit: (member: Member, code: number | null) => void) {}

  add(role: Role, slot: number, params: PeerParams | LockerParams, fd3?: number): void {
    // Ending: what exits now is not replaced.
    if (this.#closed) return;
    let child: Child;
    try {
      child = new Child(params, fd3, true);
    } catch (err) {
      this.failures.push(`${this.label}: could not start a ${role}: ${String(err)}`);
      return;
    }
    const pid = child.process.pid ?? -1;
    let exited!: () => void;
    const member: Member = { role, slot, child, pid, started: false, exited: new Promise<void>((resolve) => { exited = resolve; }) };
    this.live.add(member);
    this.#all.push(member);
    this.pids.push(pid);
    // A child that dies before reading its 'go' breaks that write; its exit is what counts.
    child.process.stdin!.on('error', () => {});
    const gone = (code: number | null): void => {
      this.live.delete(member);
      this.onExit(member, code);
      exited();
      this.onChange();
    };
    child.process.on('exit', gone);
    child.process.on('error', (err) => {
      this.failures.push(`${this.label}: a ${role} process failed: ${err.message}`);
      // Never started (the spawn failed): there will be no 'exit'.
      if (child.process.pid === undefined) gone(null);
    });
    this.#track(child.lineCount(1, 20_000).then(
      () => {
        child.go();
        member.started = true;
      },
      () => {
        /* Ended before it was ready: its exit reports it. Still alive: hung. */
        if (child.process.exitCode !== null || child.process.signalCode !== null) return;
        this.failures.push(`${this.label}: ${role} ${pid} was not ready after 20 s`);
        child.kill();
      },
    ));
  }

  /** Working members that can be killed. */
  targets(): Member[] {
    return [...this.live].filter((m) => m.started && m.killedAt === undefined);
  }

  count(role: Role): number {
    return [...this.live].filter((m) => m.role === role).length;
  }

  kill(member: Member): void {
    member.killedAt = process.hrtime.bigint();
    this.killTimes.set(member.pid, member.killedAt);
    this.kills.set(member.role, (this.kills.get(member.role) ?? 0) + 1);
    process.kill(member.pid, 'SIGKILL');
    this.#track(member.exited);
  }

  /** Resolves once every process being started is working and every killed one has exited (and been replaced). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
  }

  /**
   * Kills whatever is still alive (a round that ended normally has nothing
   * left; these kills are not counted as chaos) and waits until every
   * process has exited.
   */
  async end(): Promise<void> {
    this.#closed = true;
    for (const m of this.live) {
      if (m.killedAt !== undefined) continue;
      m.killedAt = process.hrtime.bigint();
      process.kill(m.pid, 'SIGKILL');
    }
    await Promise.all(this.#all.map((m) => m.exited));
  }

  #track(p: Promise<unknown>): void {
    const tracked: Promise<unknown> = p.finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }
}

/**
 * Follows a progress count. A run that makes none for STALL_LIMIT_MS while
 * processes are alive is stuck; the longest stall is reported either way.
 */
class Watchdog {
  longestStallMs = 0;
  stuck = false;
  #stopped = false;
  #last: number;
  #since = performance.now();
  readonly #timer: NodeJS.Timeout;
  #wakers: (() => void)[] = [];

  constructor(readonly progress: () => number, readonly alive: () => boolean) {
    this.#last = progress();
    this.#timer = setInterval(() => this.poke(), SAMPLE_MS);
  }

  /** Looks at the progress now and wakes whoever waits in {@link until}. */
  poke(): void {
    const now = performance.now();
    const p = this.progress();
    // Nobody alive: nothing is waiting on anything, so nothing stalls.
    if (p !== this.#last || !this.alive()) {
      this.#last = p;
      this.#since = now;
    }
    const stall = now - this.#since;
    this.longestStallMs = Math.max(this.longestStallMs, stall);
    if (stall >= STALL_LIMIT_MS) this.stuck = true;
    for (const wake of this.#wakers.splice(0)) wake();
  }

  /** Resolves once `done()` holds, `ms` have passed, or the run is stuck. */
  async until(done: () => boolean, ms = Number.POSITIVE_INFINITY): Promise<void> {
    const deadline = performance.now() + ms;
    while (!done() && !this.stuck && !this.#stopped && performance.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = Number.isFinite(ms) ? setTimeout(resolve, Math.max(0, deadline - performance.now())) : undefined;
        this.#wakers.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    for (const wake of this.#wakers.splice(0)) wake();
  }
}

/** Kills at random intervals until `deadline` (ms since the epoch) or a stall; `pick` chooses each victim. */
async function rampage(crew: Crew, watchdog: Watchdog, deadline: number, pick: () => Member | undefined): Promise<void> {
  for (;;) {
    const next = Date.now() + KILL_MIN_MS + Math.random() * (KILL_MAX_MS - KILL_MIN_MS);
    if (next >= deadline) break;
    await watchdog.until(() => false, next - Date.now());
    if (watchdog.stuck) break;
    const victim = pick();
    if (victim !== undefined) crew.kill(victim);
  }
  if (!watchdog.stuck) await watchdog.until(() => false, deadline - Date.now());
}

function any<T>(items: T[]): T | undefined {
  return items[Math.floor(Math.random() * items.length)];
}

const unique = (): string => `/ipckit-soak-chaos-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

/** What a round made, to look for once it is over. */
interface Made {
  segments: string[];
  posixQueue?: string;
  sysvKey?: number;
  /** Named semaphores (their files: /dev/shm/sem.<name>). */
  namedSemaphores?: string[];
  /** A System V semaphore set. */
  semKey?: number;
  directory?: string;
  /** Sockets of the run still bound or listening (asked once every process has exited). */
  sockets?: () => string[];
}

/**
 * Whatever a round made that outlived it, probed where the kernel shows it:
 * /dev/shm, /proc/sysvipc/msg and sem, the temporary directory, the parent's
 * descriptors (new since `fdsBefore`) and mappings, /proc/<pid> of every child.
 */
function leftovers(made: Made, fdsBefore: Map<string, string>, pids: number[]): string[] {
  const out: string[] = [];
  for (const name of made.segments) if (existsSync(`/dev/shm${name}`)) out.push(`segment /dev/shm${name}`);
  const maps = readFileSync('/proc/self/maps', 'utf8');
  for (const name of made.segments) if (maps.includes(`/dev/shm${name}`)) out.push(`a mapping of ${name}`);
  if (made.posixQueue !== undefined) {
    // /dev/mqueue is not always mounted: ask the kernel by opening.
    try {
      PosixMessageQueue.open(made.posixQueue).close();
      out.push(`POSIX queue ${made.posixQueue}`);
    } catch (err) {
      if ((err as IpcError).code !== 'ENOENT') throw err;
    }
  }
  if (made.sysvKey !== undefined && sysvKeys('msg').includes(made.sysvKey)) out.push(`System V queue 0x${made.sysvKey.toString(16)}`);
  if (made.semKey !== undefined && sysvKeys('sem').includes(made.semKey)) out.push(`System V semaphore set 0x${made.semKey.toString(16)}`);
  for (const name of made.namedSemaphores ?? []) {
    const file = `/dev/shm/sem.${name.slice(1)}`;
    if (existsSync(file)) out.push(`named semaphore ${file}`);
    if (maps.includes(file)) out.push(`a mapping of ${file}`);
  }
  if (made.directory !== undefined && existsSync(made.directory)) out.push(`directory ${made.directory}`);
  out.push(...(made.sockets?.() ?? []));
  for (const [fd, target] of descriptorMap()) {
    if (fdsBefore.get(fd) !== target && /^pipe:|ipckit-soak/.test(target)) out.push(`descriptor ${fd} (${target})`);
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // The pid may have been reused already; only a process whose parent is this one is ours.
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) out.push(`process ${pid}`);
    } catch {
      /* Gone and reaped. */
    }
  }
  return out;
}

/** What a child's stderr says went wrong: its error line and code (a Node crash ends with the version, not the error). */
function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  const error = lines.find((line) => /^\w*Error\b/.test(line));
  const code = lines.find((line) => /^\s+code: /.test(line))?.trim();
  return [error ?? lines.at(-1) ?? '(no output)', code].filter((x) => x !== undefined).join(' ');
}

/** What the rounds of one run add up to. */
interface Figures {
  rounds: number;
  kills: Map<Role, number>;
  longestStallMs: number;
  deadlocks: number;
  leftBehind: string[];
  failures: string[];
}

function newFigures(): Figures {
  return { rounds: 0, kills: new Map(), longestStallMs: 0, deadlocks: 0, leftBehind: [], failures: [] };
}

/** What one kind of run supplies to {@link round}; `crew` is the round's. */
interface Plan {
  label: string;
  made: Made;
  /** Starts the first workers. */
  start(crew: Crew): void | Promise<void>;
  /** Decides about a worker that exited: what it means, and whether to replace it. */
  onExit(crew: Crew, member: Member, code: number | null): void;
  /** Once the first workers are working. */
  ready?(crew: Crew): void;
  /** The count the watchdog follows. */
  progress(): number;
  /** The next victim. */
  victim(crew: Crew): Member | undefined;
  /** After the kills: lets the workers end, until none is left or the watchdog finds the round stuck. */
  finish(crew: Crew, watchdog: Watchdog): Promise<void>;
  /** Every worker has exited: adds up the figures and checks the invariants. */
  tally(crew: Crew): void;
  /** Removes what the round made; runs whatever happened. */
  remove(): void;
}

/**
 * One round: the plan's workers start, are killed until `deadline` under a
 * watchdog, finish, are tallied; then everything is removed and looked for.
 */
async function round(f: Figures, deadline: number, make: () => Promise<Plan>): Promise<void> {
  const fdsBefore = descriptorMap();
  const plan = await make();
  const removal = removeOnInterrupt(() => plan.remove());
  const crew = new Crew(plan.label, (m, code) => plan.onExit(crew, m, code));
  let watchdog: Watchdog | undefined;
  try {
    try {
      await plan.start(crew);
      await crew.settled();
      plan.ready?.(crew);
      const dog = new Watchdog(() => plan.progress(), () => crew.live.size > 0);
      watchdog = dog;
      crew.onChange = () => dog.poke();
      await rampage(crew, dog, deadline, () => plan.victim(crew));
      if (!dog.stuck) await plan.finish(crew, dog);
    } finally {
      watchdog?.stop();
      await crew.end();
    }
    plan.tally(crew);
  } catch (err) {
    f.failures.push(`${plan.label}: ${(err as Error)?.stack ?? String(err)}`);
  } finally {
    removal();
    plan.remove();
  }
  f.rounds++;
  for (const [role, n] of crew.kills) f.kills.set(role, (f.kills.get(role) ?? 0) + n);
  f.longestStallMs = Math.max(f.longestStallMs, watchdog?.longestStallMs ?? 0);
  f.failures.push(...crew.failures);
  if (watchdog?.stuck === true) {
    f.deadlocks++;
    f.failures.push(`${plan.label}: no progress for ${STALL_LIMIT_MS / 1000} s with processes alive (a deadlock)`);
  }
  const left = leftovers(plan.made, fdsBefore, crew.pids);
  f.leftBehind.push(...left);
  f.failures.push(...left.map((what) => `${plan.label}: left behind ${what}`));
}

interface MessageFigures extends Figures, DeliveryCounts, ServerStats {
  torn: number;
  /** Messages a replacement consumer received first that its predecessor had taken (at-least-once transports only). */
  redelivered: number;
  /** Channel waits that ended with ERR_IPC_PEER_DEAD and were tried again, in processes that finished. */
  peerDead: number;
}

/**
 * Messages over `transport`: producers and consumers killed and replaced (over a connected transport, producers
 * only); then the producers end, and one stop marker per consumer drains.
 */
async function messagePlan(transport: Transport, deadline: number, f: MessageFigures): Promise<Plan> {
  const prepared = await transport.prepare();
  const ledgerName = unique();
  // A single-producer, single-consumer transport (the channel): one of each at a time, a replacement taking the dead one's role over.
  const producers = transport.single === true ? 1 : PRODUCERS;
  const consumers = transport.single === true ? 1 : CONSUMERS;
  const ledger = Ledger.create(ledgerName, SLOTS, consumers, SLOT_SEQ);
  const connected = transport.connected === true;
  let nextSlot = 0;
  let draining = false;
  /** Connections the servers cut this round (a producer killed inside a frame). */
  let cut = 0;
  const params = (role: PeerParams['role'], index: number, runMs: number): PeerParams => ({
    role, transport: transport.name, address: prepared.address, mode: 'mixed', index, producers: SLOTS, consumers,
    ledger: ledgerName, runMs, maxSeq: SLOT_SEQ,
  });
  const addProducer = (crew: Crew): void => {
    const runMs = deadline - Date.now();
    // Out of slots (hundreds of producer kills in one round), the round goes on with the producers it has.
    if (nextSlot === SLOTS || runMs < MIN_LIFE_MS) return;
    crew.add('producer', nextSlot, { ...params('producer', nextSlot, runMs), address: senderAddress(prepared, nextSlot) }, prepared.senderFd?.fd);
    nextSlot++;
  };
  const addConsumer = (crew: Crew, index: number): void => crew.add('consumer', index, params('consumer', index, 0), prepared.receiverFd?.fd);
  const total = (field: ConsumerField): number => ledger.total(field);
  const made: Made = { segments: [ledgerName], sockets: () => prepared.leftovers?.() ?? [] };
  if (transport.name === 'posix-mq') made.posixQueue = prepared.address;
  if (transport.name === 'sysv-mq') made.sysvKey = Number(prepared.address);
  if (transport.name === 'fifo') made.directory = dirname(prepared.address);
  if (transport.name.startsWith('channel')) made.segments.push(prepared.address);
  return {
    label: transport.name,
    made,
    async start(crew) {
      for (let c = 0; c < consumers; c++) addConsumer(crew, c);
      if (connected) {
        // The consumers are servers: producers connect to the addresses they report.
        await crew.settled();
        const servers = [...crew.live].filter((m) => m.role === 'consumer').sort((a, b) => a.slot - b.slot);
        if (servers.length !== CONSUMERS) throw new Error(`${CONSUMERS - servers.length} consumer(s) did not start`);
        for (const m of servers) prepared.receivers.push(listeningAddress(m.child));
      }
      for (let p = 0; p < producers; p++) addProducer(crew);
    },
    onExit(crew, m, code) {
      // Producers end on their own (time up, or their slot's sequence numbers used); consumers on a stop marker.
      const expected = m.killedAt !== undefined || (code === 0 && (m.role === 'producer' || draining));
      if (!expected) {
        if (/a read returned \d+ bytes/.test(m.child.stderr)) f.torn++;
        else crew.failures.push(`${transport.name}: ${m.role} ${m.pid} exited with ${code ?? m.child.process.signalCode}: ${lastLine(m.child.stderr)}`);
      }
      if (connected && m.role === 'consumer' && code === 0 && draining) {
        const stats = JSON.parse(m.child.lines.at(-1)!) as ServerStats;
        f.connections += stats.connections;
        f.cut += stats.cut;
        cut += stats.cut;
      }
      // A channel end that finished tells how often its peer died under a wait (a killed one tells nothing).
      if (transport.name.startsWith('channel') && code === 0 && m.child.lines.length > 1) {
        const stats = JSON.parse(m.child.lines.at(-1)!) as Partial<ChannelEndStats>;
        f.peerDead += stats.peerDead ?? 0;
      }
      if (m.role === 'producer') addProducer(crew);
      // A server that died is not replaced: its producers were connected to it (the failure is recorded).
      else if (!draining && !connected) addConsumer(crew, m.slot);
    },
    progress() {
      let n = 0;
      for (let p = 0; p < nextSlot; p++) n += ledger.sent(p);
      return n + total('received') + total('duplicated') + total('corrupt');
    },
    victim: (crew) => any(connected ? crew.targets().filter((m) => m.role === 'producer') : crew.targets()),
    async finish(crew, dog) {
      // The last victims' replacements start; every producer then ends at the deadline.
      await crew.settled();
      await dog.until(() => crew.count('producer') === 0);
      if (dog.stuck) return;
      draining = true;
      for (let c = 0; c < consumers; c++) {
        // One stop marker per consumer, behind all the data. A marker still waiting for room when the
        // round ends (the consumers are stuck: the watchdog says so) fails once the queue is closed.
        prepared.parent.send(stopMarker()).catch(() => {});
      }
      await dog.until(() => crew.live.size === 0);
    },
    tally(crew) {
      const { sent, lost } = ledger.tally(nextSlot);
      const received = total('received');
      // Distinct messages recorded (bits set) that no consumer counted: it was killed between the two.
      const uncounted = sent - lost - received;
      const consumerKills = crew.kills.get('consumer') ?? 0;
      const producerKills = crew.kills.get('producer') ?? 0;
      const redelivered = total('redelivered');
      const label = transport.name;
      if (uncounted < 0) f.failures.push(`${label}: ${received} received but only ${sent - lost} distinct messages recorded`);
      // A consumer killed holds at most one message: taken but not recorded (lost), or recorded but not counted.
      if (lost + Math.max(0, uncounted) > consumerKills) {
        f.failures.push(`${label}: ${lost} lost and ${Math.max(0, uncounted)} uncounted in a round, more than the ${consumerKills} consumers killed in it`);
      }
      // Redelivered: the next consumer's first message was the one its predecessor died holding, its space not given back
      // (ledger.ts); a kill either loses the message in hand (space given back, not recorded) or leaves it to be received again.
      if (redelivered > 0 && transport.redelivers !== true) f.failures.push(`${label}: ${redelivered} redelivered over a transport that never redelivers`);
      if (lost + redelivered > consumerKills) {
        f.failures.push(`${label}: ${lost} lost and ${redelivered} redelivered in a round, more than the ${consumerKills} consumers killed in it`);
      }
      // A producer killed inside a send cuts its own connection, and no other.
      if (cut > producerKills) f.failures.push(`${label}: ${cut} connections cut inside a frame in a round, more than the ${producerKills} producers killed in it`);
      f.sent += sent;
      f.lost += lost;
      f.received += received;
      f.duplicated += total('duplicated');
      f.redelivered += redelivered;
      f.reordered += total('reordered');
      f.corrupt += total('corrupt');
    },
    remove() {
      prepared.teardown();
      ledger.segment.close();
      ledger.segment.unlink();
    },
  };
}

/** A lock run's ledger, and the plan parts both lock runs share. */
function lockPlan(label: string): { ledger: LockLedger; w: Int32Array; made: Made; checkCreated(f: Figures): void; remove(): void } {
  const name = unique();
  const ledger = LockLedger.create(name);
  const w = ledger.words;
  return {
    ledger,
    w,
    made: { segments: [name] },
    checkCreated(f) {
      const created = Atomics.load(w, LockLedger.CREATED);
      if (created !== 1) f.failures.push(`${label}: ${created} workers' openOrCreate initialised the lock; exactly one must`);
    },
    remove() {
      ledger.segment.close();
      ledger.segment.unlink();
    },
  };
}

/** The next victim of a lock run: the worker holding the lock (pid `holder`) most of the time, any worker otherwise. */
function preferHolder(crew: Crew, holder: number | null | undefined): Member | undefined {
  const inside = crew.targets().find((m) => m.pid === holder);
  return inside !== undefined && Math.random() < PREFER_HOLDER ? inside : any(crew.targets());
}

/** Sets STOP: each worker finishes the iteration it is in (a sleeping one takes the lock once more) and exits. */
async function stopWorkers(w: Int32Array, crew: Crew, dog: Watchdog): Promise<void> {
  Atomics.store(w, LockLedger.STOP, 1);
  await dog.until(() => crew.live.size === 0);
}

/** A worker that exited on its own: fine only once STOP is set, and with code 0. */
function checkWorkerExit(crew: Crew, m: Member, code: number | null, stopping: boolean): void {
  if (m.killedAt === undefined && !(stopping && code === 0)) {
    crew.failures.push(`${crew.label}: ${m.role} ${m.pid} exited with ${code ?? m.child.process.signalCode}: ${lastLine(m.child.stderr)}`);
  }
}

interface MutexFigures extends Figures {
  /** Workers killed holding the mutex: it still named them when they were reaped, or a taker found them inside. */
  killedHolding: number;
  acquired: number;
  /** Takeovers by workers, and by the parent at the end (a holder killed last, with nobody left to take over). */
  takeovers: number;
  repairs: number;
  a: number;
  b: number;
  recoveryMs: number[];
}

/** The robust mutex: workers loop on it, holders (mostly) are killed, the next locker takes over and repairs. */
async function mutexPlan(f: MutexFigures): Promise<Plan> {
  const { ledger, w, made, checkCreated, remove } = lockPlan('mutex');
  let stopping = false;
  let mutex: Mutex | undefined;
  const diedHolding = new Set<number>();
  const add = (crew: Crew, index: number): void => crew.add('mutex', index, { role: 'mutex', ledger: ledger.segment.address });
  return {
    label: 'mutex',
    made,
    remove,
    start(crew) {
      for (let i = 0; i < MUTEX_WORKERS; i++) add(crew, i);
    },
    onExit(crew, m, code) {
      checkWorkerExit(crew, m, code, stopping);
      // Reaped and still the owner: it died holding the lock, and nobody has taken it over yet.
      if (m.killedAt !== undefined && mutex?.owner === m.pid) diedHolding.add(m.pid);
      if (!stopping) add(crew, m.slot);
    },
    ready() {
      checkCreated(f);
      mutex = Mutex.open(ledger.segment, 0);
    },
    progress: () => Atomics.load(w, LockLedger.ACQUIRED),
    victim: (crew) => preferHolder(crew, mutex?.owner),
    async finish(crew, dog) {
      stopping = true;
      await stopWorkers(w, crew, dog);
    },
    tally(crew) {
      stopping = true;
      const lock = mutex ?? Mutex.open(ledger.segment, 0);
      // Every worker is gone: a holder killed last, with nobody left to take over, is taken over here.
      let cleanupTakeover = 0;
      try {
        if (!lock.tryLock()) f.failures.push(`mutex: thread ${lock.owner} holds the mutex after every worker exited`);
      } catch (err) {
        if (!(err instanceof IpcError) || err.code !== 'ERR_IPC_OWNER_DIED') throw err;
        cleanupTakeover = 1;
        if (w[LockLedger.A] !== w[LockLedger.B]) {
          w[LockLedger.B] = w[LockLedger.A]!;
          Atomics.add(w, LockLedger.REPAIRS, 1);
        }
        lock.markConsistent();
      }
      if (lock.held) lock.unlock();
      checkHolders('mutex', f, crew, ledger, diedHolding, cleanupTakeover);
    },
  };
}

interface UndoLockFigures extends MutexFigures {
  /** Semaphore 0 after every round, once every worker is gone: 1 each time if no unit was lost or made. */
  finalValues: number[];
}

/**
 * A System V semaphore taken and given back with SEM_UNDO as the lock:
 * workers loop take, A += 1, pause, B += 1, give; holders (mostly) are
 * killed. The kernel gives a dead holder's unit back at once; the next
 * holder finds the HOLDER word still set (nobody else says anything) and
 * repairs B = A. The unit must be there, exactly one, at the end.
 */
async function undoLockPlan(f: UndoLockFigures): Promise<Plan> {
  const { ledger, w, made, checkCreated, remove } = lockPlan('undo-lock');
  const key = freeSemaphoreKey();
  made.semKey = key;
  let stopping = false;
  const diedHolding = new Set<number>();
  const add = (crew: Crew, index: number): void => crew.add('undo-lock', index, { role: 'undo-lock', ledger: ledger.segment.address, key });
  return {
    label: 'undo-lock',
    made,
    remove() {
      remove();
      try {
        SemaphoreSet.remove(key);
      } catch {
        /* Never made (no worker started), or removed already. */
      }
    },
    start(crew) {
      for (let i = 0; i < MUTEX_WORKERS; i++) add(crew, i);
    },
    onExit(crew, m, code) {
      checkWorkerExit(crew, m, code, stopping);
      // Reaped and still inside: it died in the critical section, and nobody has taken its place yet.
      if (m.killedAt !== undefined && Atomics.load(w, LockLedger.HOLDER) === m.pid) diedHolding.add(m.pid);
      if (!stopping) add(crew, m.slot);
    },
    ready: () => checkCreated(f),
    progress: () => Atomics.load(w, LockLedger.ACQUIRED),
    victim: (crew) => preferHolder(crew, Atomics.load(w, LockLedger.HOLDER)),
    async finish(crew, dog) {
      stopping = true;
      await stopWorkers(w, crew, dog);
    },
    tally(crew) {
      stopping = true;
      const set = SemaphoreSet.open(key);
      const st = set.stat();
      set.close();
      f.finalValues.push(st.values[0]!);
      if (st.values[0] !== 1) f.failures.push(`undo-lock: semaphore 0 is ${st.values[0]} once every worker is gone, not 1: the kernel did not give every dead holder's unit back`);
      if (st.waitingForIncrease[0] !== 0 || st.waitingForZero[0] !== 0) f.failures.push(`undo-lock: ${st.waitingForIncrease[0]} process(es) still wait on the set`);
      // A holder killed last, with nobody left to take its place, is found here.
      let cleanupTakeover = 0;
      const inside = Atomics.load(w, LockLedger.HOLDER);
      if (inside !== 0) {
        if (!crew.killTimes.has(inside)) f.failures.push(`undo-lock: ${inside} is still inside the critical section, and was not killed`);
        cleanupTakeover = 1;
        diedHolding.add(inside);
        if (w[LockLedger.A] !== w[LockLedger.B]) {
          w[LockLedger.B] = w[LockLedger.A]!;
          Atomics.add(w, LockLedger.REPAIRS, 1);
        }
      }
      checkHolders('undo-lock', f, crew, ledger, diedHolding, cleanupTakeover);
    },
  };
}

/** A System V key that no semaphore set uses now. */
function freeSemaphoreKey(): number {
  const used = new Set(sysvKeys('sem'));
  for (;;) {
    const key = (0x4d000000 | ((process.pid & 0xfff) << 12) | Math.floor(Math.random() * 4096)) >>> 0;
    if (!used.has(key)) return key;
  }
}

/** Keys of the System V objects of `kind` that exist now. */
function sysvKeys(kind: 'msg' | 'sem'): number[] {
  return readFileSync(`/proc/sysvipc/${kind}`, 'utf8').trim().split('\n').slice(1).map((line) => Number(line.trim().split(/\s+/)[0]) >>> 0);
}

/**
 * What a run of lock workers (the mutex, the undo lock) adds up to once
 * every worker is gone: recoveries, takeovers against kills, A = B.
 * `cleanupTakeover`: the parent took over from a holder killed last.
 */
function checkHolders(label: string, f: MutexFigures, crew: Crew, ledger: LockLedger, diedHolding: Set<number>, cleanupTakeover: number): void {
  const w = ledger.words;
  // Kill to takeover. The dead holder is the HOLDER word the taker found; when that is 0 (it died
  // just inside the lock, outside the section) or named already (a taker died before writing its
  // own pid there), the latest kill before the takeover.
  const kills = [...crew.killTimes.values()].sort((x, y) => (x < y ? -1 : 1));
  const named = new Set<number>();
  for (const t of ledger.takeovers()) {
    if (t.time === 0n) continue; // The taker was killed before it logged.
    if (t.holder !== 0 && !crew.killTimes.has(t.holder)) f.failures.push(`${label}: a worker took the lock over from ${t.holder}, which was not killed`);
    const killedAt = (named.has(t.holder) ? undefined : crew.killTimes.get(t.holder)) ?? kills.filter((k) => k <= t.time).at(-1);
    named.add(t.holder);
    if (t.holder !== 0) diedHolding.add(t.holder);
    if (killedAt !== undefined) f.recoveryMs.push(Number(t.time - killedAt) / 1e6);
  }
  const takeovers = Atomics.load(w, LockLedger.TAKEOVERS) + cleanupTakeover;
  const completed = Atomics.load(w, LockLedger.COMPLETED);
  const [a, b] = [Atomics.load(w, LockLedger.A), Atomics.load(w, LockLedger.B)];
  const killed = [...crew.kills.values()].reduce((x, y) => x + y, 0);
  f.killedHolding += diedHolding.size;
  f.acquired += Atomics.load(w, LockLedger.ACQUIRED);
  f.takeovers += takeovers;
  f.repairs += Atomics.load(w, LockLedger.REPAIRS);
  const violations = Atomics.load(w, LockLedger.VIOLATIONS);
  if (violations > 0) f.failures.push(`${label}: ${violations} acquisitions without a takeover found A ≠ B (two holders at once)`);
  f.a += a;
  f.b += b;
  if (a !== b) f.failures.push(`${label}: A = ${a} but B = ${b} after every repair`);
  // Each increment of A belongs to a section that completed, or to one whose holder died (one per takeover).
  if (a < completed || a > completed + takeovers) f.failures.push(`${label}: A = ${a}, but ${completed} sections completed and ${takeovers} holders died`);
  // Every holder killed is taken over exactly once; a takeover needs a dead holder.
  if (takeovers < diedHolding.size) f.failures.push(`${label}: ${diedHolding.size} workers died holding the lock but only ${takeovers} takeovers`);
  if (takeovers > killed) f.failures.push(`${label}: ${takeovers} takeovers but only ${killed} workers killed`);
}

interface SemaphoreFigures extends Figures {
  posted: number;
  taken: number;
  /** posted − taken − the final count: units the kills took away (a poster killed after a post and before counting it adds one back). */
  missing: number;
  /** A named semaphore's waiter count once every process is gone, summed over rounds (a waiter killed asleep leaves one). */
  waitersLeft: number;
}

/**
 * The semaphore: posters post units one at a time, waiters take them;
 * either is killed and replaced. `named`: a NamedSemaphore (the file
 * /dev/shm/sem.<name>, glibc's sem_t) instead of the Semaphore in the
 * ledger's segment.
 */
async function semaphorePlan(f: SemaphoreFigures, named: boolean): Promise<Plan> {
  const label = named ? 'named-semaphore' : 'semaphore';
  const { ledger, w, made, checkCreated, remove } = lockPlan(label);
  const name = named ? `${ledger.segment.address}-sem` : undefined;
  const file = `/dev/shm/sem.${name?.slice(1)}`;
  if (name !== undefined) made.namedSemaphores = [name];
  let stopping = false;
  const add = (crew: Crew, role: 'poster' | 'waiter', index: number): void =>
    crew.add(role, index, { role, ledger: ledger.segment.address, ...(name === undefined ? {} : { named: name }) });
  /** The count, and a named semaphore's waiter count, as the file or the segment holds them. */
  const counts = (): { value: number; waiters: number } => {
    if (name === undefined) return { value: Semaphore.open(ledger.segment, 0).value, waiters: 0 };
    const bytes = readFileSync(file);
    return { value: bytes.readUInt32LE(0), waiters: bytes.readUInt32LE(4) };
  };
  return {
    label,
    made,
    remove() {
      remove();
      if (name !== undefined) rmSync(file, { force: true });
    },
    start(crew) {
      for (let i = 0; i < WAITERS; i++) add(crew, 'waiter', i);
      for (let i = 0; i < POSTERS; i++) add(crew, 'poster', i);
    },
    onExit(crew, m, code) {
      checkWorkerExit(crew, m, code, stopping);
      if (!stopping) add(crew, m.role as 'poster' | 'waiter', m.slot);
    },
    ready: () => checkCreated(f),
    // Posts never wait, so the progress that matters is units taken: a lost wake-up stops it.
    progress: () => Atomics.load(w, LockLedger.ACQUIRED),
    victim: (crew) => any(crew.targets()),
    async finish(crew, dog) {
      stopping = true;
      Atomics.store(w, LockLedger.STOP, 1);
      await dog.until(() => crew.count('poster') === 0);
      // A waiter asleep takes at most one more unit before it sees STOP: one each, counted as posted.
      const waiting = crew.count('waiter');
      if (waiting > 0) {
        const sem = name === undefined ? Semaphore.open(ledger.segment, 0) : NamedSemaphore.open(name);
        sem.post(waiting);
        Atomics.add(w, LockLedger.POSTED, waiting);
        if (sem instanceof NamedSemaphore) {
          sem.close();
          // Its mapping goes a moment after close() (docs/reliability.md): before the round looks for leftovers.
          await nextTurn();
        }
      }
      await dog.until(() => crew.live.size === 0);
    },
    tally(crew) {
      const posted = Atomics.load(w, LockLedger.POSTED);
      const taken = Atomics.load(w, LockLedger.ACQUIRED);
      const { value, waiters } = counts();
      const missing = posted - taken - value;
      f.posted += posted;
      f.taken += taken;
      f.missing += missing;
      f.waitersLeft += waiters;
      // A waiter killed between taking a unit and counting it removes one; a poster killed between posting and counting adds one.
      const waiterKills = crew.kills.get('waiter') ?? 0;
      const posterKills = crew.kills.get('poster') ?? 0;
      if (missing > waiterKills) f.failures.push(`${label}: ${missing} units vanished, more than the ${waiterKills} waiters killed`);
      if (-missing > posterKills) f.failures.push(`${label}: ${-missing} units appeared, more than the ${posterKills} posters killed`);
      // Every process is gone: only a waiter killed while counted (asleep, or about to be) leaves one in glibc's waiter count.
      if (waiters > waiterKills) f.failures.push(`${label}: the waiter count is ${waiters} with nobody left, more than the ${waiterKills} waiters killed`);
    },
  };
}

/** Runs rounds of `make`'s plan until `end` (ms since the epoch), at least one. */
async function rounds(f: Figures, end: number, make: (deadline: number) => Promise<Plan>): Promise<void> {
  do {
    const deadline = Math.max(Math.min(end - ROUND_OVERHEAD_MS, Date.now() + ROUND_MS), Date.now() + 1000);
    await round(f, deadline, () => make(deadline));
  } while (end - Date.now() > ROUND_OVERHEAD_MS + 2000);
}

const DASH = '–';

function killCell(f: Figures, ...roles: [Role, string][]): string {
  return roles.map(([role, label]) => {
    const n = f.kills.get(role) ?? 0;
    return `${n} ${label}${n === 1 ? '' : 's'}`;
  }).join(', ');
}

/** The run's name, and its rounds when there were several. */
function runCell(name: string, f: Figures): string {
  return f.rounds > 1 ? `${name} (${f.rounds} rounds)` : name;
}

function tailCells(f: Figures): (string | number)[] {
  return [f.longestStallMs, f.deadlocks, f.leftBehind.length];
}

export const section: Section = {
  name: 'chaos',
  async run(ctx): Promise<SectionResult> {
    // Run alone, `--runs a,b` picks some of the runs (transports, mutex, semaphore).
    const chosen = chosenNames('--runs', [...TRANSPORTS.map((t) => t.name), 'mutex', 'undo-lock', 'semaphore', 'named-semaphore'], import.meta.url);
    const share = ctx.budgetMs / chosen.length;
    const rows: (string | number)[][] = [];
    const failures: string[] = [];
    for (const transport of TRANSPORTS.filter((t) => chosen.includes(t.name))) {
      ctx.log(`${transport.name}: ${(share / 1000).toFixed(1)} s of kills`);
      const f: MessageFigures = {
        ...newFigures(), sent: 0, received: 0, lost: 0, duplicated: 0, reordered: 0, corrupt: 0, torn: 0, connections: 0, cut: 0,
        redelivered: 0, peerDead: 0,
      };
      await rounds(f, Date.now() + share, (deadline) => messagePlan(transport, deadline, f));
      rows.push([
        runCell(transport.name, f),
        killCell(f, ['producer', 'producer'], ['consumer', 'consumer']) + (transport.single === true ? `; ${f.peerDead} peer-dead waits retried` : ''),
        f.sent, f.received, f.lost, f.duplicated, transport.redelivers === true ? f.redelivered : DASH, f.reordered,
        f.corrupt, f.torn, transport.connected === true ? `${f.connections} (${f.cut})` : DASH, DASH, DASH, DASH, DASH, ...tailCells(f),
      ]);
      const label = transport.name;
      if (f.duplicated > 0) failures.push(`${label}: ${f.duplicated} duplicated`);
      if (f.reordered > 0) failures.push(`${label}: ${f.reordered} reordered`);
      if (f.corrupt > 0) failures.push(`${label}: ${f.corrupt} corrupt`);
      if (f.torn > 0) failures.push(`${label}: ${f.torn} torn reads (a read returned part of a message)`);
      failures.push(...f.failures);
    }
    if (chosen.includes('mutex')) {
      ctx.log(`mutex: ${(share / 1000).toFixed(1)} s of kills`);
      const f: MutexFigures = { ...newFigures(), killedHolding: 0, acquired: 0, takeovers: 0, repairs: 0, a: 0, b: 0, recoveryMs: [] };
      await rounds(f, Date.now() + share, () => mutexPlan(f));
      const killed = [...f.kills.values()].reduce((x, y) => x + y, 0);
      rows.push([
        runCell('mutex', f), `${killed} (${f.killedHolding} holding)`, DASH, DASH, DASH, DASH, DASH, DASH, DASH, DASH, DASH, f.acquired, `${f.takeovers} (${f.repairs})`,
        `${f.a} / ${f.b}`, `${fmt(percentile(f.recoveryMs, 50))} / ${fmt(percentile(f.recoveryMs, 99))}`, ...tailCells(f),
      ]);
      failures.push(...f.failures);
    }
    if (chosen.includes('undo-lock')) {
      ctx.log(`undo-lock: ${(share / 1000).toFixed(1)} s of kills`);
      const f: UndoLockFigures = { ...newFigures(), killedHolding: 0, acquired: 0, takeovers: 0, repairs: 0, a: 0, b: 0, recoveryMs: [], finalValues: [] };
      await rounds(f, Date.now() + share, () => undoLockPlan(f));
      const killed = [...f.kills.values()].reduce((x, y) => x + y, 0);
      rows.push([
        runCell('undo-lock', f), `${killed} (${f.killedHolding} holding); unit at the end: ${f.finalValues.join(', ') || DASH}`, DASH, DASH, DASH, DASH, DASH, DASH,
        DASH, DASH, DASH, f.acquired, `${f.takeovers} (${f.repairs})`, `${f.a} / ${f.b}`,
        `${fmt(percentile(f.recoveryMs, 50))} / ${fmt(percentile(f.recoveryMs, 99))}`, ...tailCells(f),
      ]);
      failures.push(...f.failures);
    }
    for (const named of [false, true]) {
      const label = named ? 'named-semaphore' : 'semaphore';
      if (!chosen.includes(label)) continue;
      ctx.log(`${label}: ${(share / 1000).toFixed(1)} s of kills`);
      const f: SemaphoreFigures = { ...newFigures(), posted: 0, taken: 0, missing: 0, waitersLeft: 0 };
      await rounds(f, Date.now() + share, () => semaphorePlan(f, named));
      rows.push([
        runCell(label, f), killCell(f, ['poster', 'poster'], ['waiter', 'waiter']) + (named ? `; waiter count left ${f.waitersLeft}` : ''),
        f.posted, f.taken, f.missing, DASH, DASH, DASH, DASH, DASH, DASH, DASH, DASH, DASH, DASH, ...tailCells(f),
      ]);
      failures.push(...f.failures);
    }
    return {
      title: 'Chaos: SIGKILL mid-flight',
      about: `A SIGKILL every ${KILL_MIN_MS}–${KILL_MAX_MS} ms to a random worker, replaced at once; runs of ${(share / 1000).toFixed(0)} s each ` +
        `(in rounds of at most ${ROUND_MS / 1000} s, each with new objects). ` +
        `Messages: ${PRODUCERS} producer and ${CONSUMERS} consumer processes (calls alternating sync and async), 64-byte checksummed messages, ` +
        'each producer process under a ledger slot of its own. A consumer killed between taking a message from the kernel and setting its ' +
        'ledger bit loses that one message, so lost (plus any bit set but not yet counted in received) ≤ consumers killed; duplicated, ' +
        'reordered and corrupt must be 0, which also shows that a producer killed mid-send sent a whole message or none. Torn counts ' +
        'pipe/FIFO reads that returned part of a message (a write ≤ PIPE_BUF and a read are each atomic, so it must be 0). ' +
        'Sockets (unix-stream, unix-seqpacket, tcp): each consumer is a server, each producer one connection to it, and only producers ' +
        'are killed (a killed server would take whatever its connections held); lost must then be 0. Connections: those the servers ' +
        'accepted; cut: those that ended inside a frame (a producer killed mid-send; the server drops the connection with ' +
        'ERR_IPC_FRAMING, delivers nothing of it and serves the others), at most one per producer killed. unix-dgram is one socket ' +
        'the consumers share, as a queue, and both roles are killed. ' +
        'channel: one producer and one consumer process at a time, both killed; the replacement takes the dead one\'s role over; ' +
        'channel-shared: shared sides (producers and consumers \'multi\'), all the producers and consumers at once, taking turns ' +
        'through the sides\' robust mutexes, a victim holding a turn (mid-send, mid-loan, holding a view) taken over by the next. ' +
        'A record is visible only once complete, so corrupt (which includes a record whose filler is wrong) must be 0 whatever the ' +
        'kills; the consumer is at-least-once across its own death: a message it held as a view (every other receive), recorded but ' +
        'its space not yet given back, is received again as the next consumer\'s first message. Redelivered counts exactly those ' +
        'repeats (the replacement\'s first message equal to the last one its slot took); any other repeat counts as dup and fails; ' +
        'lost + redelivered ≤ consumers killed (a kill either loses the copy in hand or leaves the view to come again). A side ' +
        'waiting for a killed peer gets ERR_IPC_PEER_DEAD and tries again until the replacement comes (counted in processes that finished). ' +
        `Mutex: ${MUTEX_WORKERS} workers lock (Mutex.openOrCreate), A += 1, pause 1 ms, B += 1, unlock; ${PREFER_HOLDER * 100}% of kills hit ` +
        'the holder of the moment. Holding: victims the mutex still named when they were reaped, or that a taker found inside the ' +
        'critical section; each must be taken over (ERR_IPC_OWNER_DIED) exactly once, and no takeover without a kill. Repairs: takeovers ' +
        'that found A ≠ B and set B = A. Recovery: a holder\'s kill to the next locker taking over, ms. A = B at the end. ' +
        `Undo-lock: the same ${MUTEX_WORKERS} workers and section under semaphore 0 of a System V set (SemaphoreSet.openOrCreate, value 1), ` +
        'taken and given back with undo: the kernel gives a dead holder\'s unit back at once and says nothing, so a taker that finds the ' +
        'HOLDER word still set counts a takeover (it must name a killed process) and repairs B = A; the unit must be exactly 1 once every ' +
        'worker is gone, with nobody waiting on the set. ' +
        `Semaphore: ${POSTERS} posters post units one at a time, ${WAITERS} waiters take them; lost = posted − taken − the final count, ` +
        'within [−posters killed, waiters killed] (a kill between a post or a take and its count). Named-semaphore: the same over a ' +
        'NamedSemaphore (glibc\'s sem_t in /dev/shm/sem.<name>, NamedSemaphore.openOrCreate); with every process gone, glibc\'s waiter ' +
        'count (shown, summed over rounds) may hold one for each waiter killed while counted, no more. Longest stall: the longest time ' +
        `without progress, sampled every ${SAMPLE_MS} ms; ${STALL_LIMIT_MS / 1000} s with processes alive is a deadlock. Left behind: segments, queues, FIFO directories, descriptors, mappings, ` +
        'sockets, semaphores and processes of the run still present afterwards (/dev/shm, /proc/sysvipc/msg and sem, the temporary directory, /proc/net/unix, ' +
        '/proc/net/tcp, /proc).',
      columns: [
        'run', 'kills', 'sent', 'received', 'lost', 'dup', 'redelivered', 'reordered', 'corrupt', 'torn', 'connections (cut)', 'acquired', 'takeovers (repairs)', 'A / B',
        'recovery p50 / p99 ms', 'longest stall ms', 'deadlocks', 'left behind',
      ],
      rows,
      failures,
    };
  },
};

if (import.meta.url === `file://${process.argv[1]}`) await runStandalone(section);
