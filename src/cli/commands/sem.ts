/**
 * `ipckit sem create|wait|post|stat|rm <address>`: the kernel's semaphores
 * from the shell. The address picks the family: `/name` is a POSIX named
 * semaphore; `0x1234`, `4660`, `ftok:PATH:ID` and `id:N` a System V set.
 * @internal
 * @module
 */
import { E, systemError } from '../../errors.js';
import { type ParsedAddress, parseAddress } from '../../internal/address.js';
import { SEM_VALUE_MAX } from '../../lock.js';
import { NamedSemaphore, SEMVMX, SemaphoreSet } from '../../semaphore.js';
import {
  OWNER_OPTION, type CommandContext, type Group, type Leaf, type OptionSpec, intOption, modeOption, onStopSignals, ownerOption, parseInteger,
  printFields, printJson, removeVerb, usageError, waitOption,
} from '../program.js';

const ADDRESS_HELP = 'ADDRESS: /name for a POSIX named semaphore; 0x1234, 4660, ftok:PATH:ID or id:N for a System V semaphore set.';
const KIND = 'semaphore';

/** Most semaphores a set can have (sem_nsems is 16 bits; kernel.sem's SEMMSL is the real bound, checked by semget). */
const SET_COUNT_MAX = 65535;

type Semaphore = NamedSemaphore | SemaphoreSet;

const INDEX_OPTION: OptionSpec = { type: 'string', value: 'I', description: 'System V: which semaphore of the set (default 0)' };

/**
 * The semaphore the first argument names. The family comes from the
 * address, so options only a set has are refused for a named semaphore
 * before anything is looked up: a bad command line is a usage error whether
 * or not the semaphore exists.
 */
function semaphoreAddress(ctx: CommandContext, setOnly: readonly string[]): ParsedAddress {
  const address = ctx.positionals[0]!;
  const parsed = parseAddress(address, KIND);
  const given = parsed.family === 'posix' ? setOnly.filter((name) => ctx.values[name] !== undefined) : [];
  if (given.length > 0) {
    throw usageError(`${given.map((name) => `--${name}`).join(' and ')} appl${given.length === 1 ? 'ies' : 'y'} to System V semaphore sets; ` +
      `${address} is a POSIX named semaphore.`);
  }
  return parsed;
}

function open(parsed: ParsedAddress, ctx: CommandContext): Semaphore {
  const owner = ownerOption(ctx);
  return parsed.family === 'posix' ? NamedSemaphore.open(parsed.name, { owner }) : SemaphoreSet.open(parsed.address, { owner });
}

/** `--index`, checked against the set's size once it is open. */
function indexIn(set: SemaphoreSet, index: number): number {
  if (index >= set.count) {
    throw usageError(`--index must be from 0 to ${set.count - 1}: ${set.address} has ${set.count} semaphore${set.count === 1 ? '' : 's'}; got ${index}.`);
  }
  return index;
}

function describe(sem: Semaphore): Record<string, unknown> {
  if (sem instanceof NamedSemaphore) {
    const s = sem.stat();
    return {
      family: 'posix', name: sem.name, value: sem.value, waiters: sem.waiters, mode: s.mode, uid: s.uid, gid: s.gid,
      changeTime: s.changeTime.toISOString(),
    };
  }
  const s = sem.stat();
  return {
    family: 'sysv', address: sem.address, ...s,
    lastOpTime: s.lastOpTime?.toISOString() ?? null,
    changeTime: s.changeTime.toISOString(),
    limits: SemaphoreSet.limits(),
  };
}

/** A set's initial values: `--value N` for all, or `--value A,B,...` one per semaphore (their number is then the count). */
function setValues(ctx: CommandContext): { count: number; value: number | number[] } {
  const count = intOption(ctx, 'count', 1, SET_COUNT_MAX);
  if (ctx.values.value === undefined) return { count: count ?? 1, value: 0 };
  const values = String(ctx.values.value).split(',').map((text) => parseInteger(text, 'value', 0, SEMVMX));
  if (values.length === 1) return { count: count ?? 1, value: values[0]! };
  if (count !== undefined && count !== values.length) {
    throw usageError(`--value lists ${values.length} values but --count is ${count}: give one value for all of them, or one per semaphore.`);
  }
  return { count: values.length, value: values };
}

const create: Leaf = {
  name: 'create',
  summary: 'create a semaphore (fails if it exists)',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: `${ADDRESS_HELP}\nA System V set takes --count, and --value for all its semaphores or as a list, one per semaphore.`,
  options: {
    value: { type: 'string', value: 'N|N,N,...', description: `initial value (default 0; POSIX up to ${SEM_VALUE_MAX}, System V up to ${SEMVMX})` },
    count: { type: 'string', value: 'N', description: 'System V: semaphores in the set (default 1, or as many as --value lists)' },
    mode: { type: 'string', value: 'OCTAL', description: 'permission bits, e.g. 600 (default 600)' },
  },
  async run(ctx) {
    const parsed = semaphoreAddress(ctx, ['count']);
    const mode = modeOption(ctx, 0o600);
    let sem: Semaphore;
    if (parsed.family === 'posix') {
      sem = NamedSemaphore.create(parsed.name, { mode, value: intOption(ctx, 'value', 0, SEM_VALUE_MAX, 0)! });
    } else {
      sem = SemaphoreSet.create(parsed.address, { mode, ...setValues(ctx) });
    }
    try {
      if (ctx.json) printJson(describe(sem));
      else process.stdout.write(`created ${sem instanceof NamedSemaphore ? sem.name : `${sem.address} (id ${sem.id})`}\n`);
    } finally {
      sem.close();
    }
  },
};

/**
 * Runs a blocking wait that a stop signal (Ctrl-C: SIGINT; SIGTERM; SIGHUP)
 * withdraws instead of killing the process where it sleeps: a named
 * semaphore counts its sleepers in its own memory (glibc's protocol), and a
 * process killed asleep would stay counted there for good. Resolves to
 * false when a signal withdrew the wait (nothing was taken; the exit status
 * is then 128 + the signal's number); a wait that completed first wins.
 * A second signal while the wait is withdrawn ends the process at once.
 */
async function takeUnlessStopped(wait: (signal: AbortSignal) => Promise<void>): Promise<boolean> {
  const controller = new AbortController();
  let stoppedBy: number | undefined;
  const restoreSignals = onStopSignals((info) => {
    if (stoppedBy !== undefined) process.exit(128 + info.number);
    stoppedBy = info.number;
    controller.abort();
  });
  try {
    await wait(controller.signal);
    return true;
  } catch (err) {
    if (stoppedBy === undefined) throw err;
    process.exitCode = 128 + stoppedBy;
    return false;
  } finally {
    restoreSignals();
  }
}

const wait: Leaf = {
  name: 'wait',
  summary: 'take from a semaphore, waiting while it is zero (System V: while it is below --count)',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: `${ADDRESS_HELP}\nTakes 1 (POSIX: sem_wait; System V: semop of -1 on semaphore 0). Waits while it cannot, unless\n` +
    '--nonblock (exit 1 with EAGAIN) or --timeout (exit 1 with ERR_IPC_TIMEOUT). What is taken stays taken\n' +
    'after the command exits: give it back with "ipckit sem post".\n' +
    'Ctrl-C (SIGINT), SIGTERM or SIGHUP withdraws a waiting wait: nothing is taken, and the exit status is\n' +
    '128 + the signal\'s number (130 for Ctrl-C).\n' +
    'With --json: {"taken": N} (System V: {"taken": N, "index": I}).',
  options: {
    index: INDEX_OPTION,
    count: { type: 'string', value: 'N', description: `System V: take N at once (default 1, up to ${SEMVMX})` },
    nonblock: { type: 'boolean', description: 'fail with EAGAIN instead of waiting' },
    timeout: { type: 'string', value: 'MS', description: 'wait at most MS milliseconds' },
    owner: OWNER_OPTION,
  },
  async run(ctx) {
    const parsed = semaphoreAddress(ctx, ['index', 'count']);
    const timing = waitOption(ctx);
    const index = intOption(ctx, 'index', 0, SET_COUNT_MAX - 1, 0)!;
    const count = intOption(ctx, 'count', 1, SEMVMX, 1)!;
    using sem = open(parsed, ctx);
    if (sem instanceof NamedSemaphore) {
      if (ctx.values.nonblock) {
        if (!sem.tryWait()) throw systemError(E.EAGAIN, 'sem_wait', sem.name, 'The value is 0 and --nonblock was given.');
      } else if (!await takeUnlessStopped((signal) => sem.wait({ ...timing, signal }))) {
        return;
      }
      if (ctx.json) printJson({ taken: 1 });
      return;
    }
    const op = { index: indexIn(sem, index), delta: -count };
    if (ctx.values.nonblock) {
      if (!sem.tryOp(op)) {
        throw systemError(E.EAGAIN, 'semop', sem.address, `Semaphore ${index} is ${count === 1 ? '0' : `below ${count}`} and --nonblock was given.`);
      }
    } else if (!await takeUnlessStopped((signal) => sem.op(op, { ...timing, signal }))) {
      return;
    }
    if (ctx.json) printJson({ taken: count, index });
  },
};

const post: Leaf = {
  name: 'post',
  summary: 'give to a semaphore (add 1, or --count), waking whoever that lets proceed',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: `${ADDRESS_HELP}\nAdds 1 (POSIX: sem_post; System V: semop of +1 on semaphore 0), or --count at once. A value that would\n` +
    `pass its maximum (POSIX: EOVERFLOW past ${SEM_VALUE_MAX}; System V: ERANGE past ${SEMVMX}) is not changed: exit 1.\n` +
    'With --json: {"posted": N} (System V: {"posted": N, "index": I}).',
  options: {
    index: INDEX_OPTION,
    count: { type: 'string', value: 'N', description: 'add N at once (default 1)' },
    owner: OWNER_OPTION,
  },
  async run(ctx) {
    const parsed = semaphoreAddress(ctx, ['index']);
    const index = intOption(ctx, 'index', 0, SET_COUNT_MAX - 1, 0)!;
    const count = intOption(ctx, 'count', 1, parsed.family === 'posix' ? SEM_VALUE_MAX : SEMVMX, 1)!;
    using sem = open(parsed, ctx);
    if (sem instanceof NamedSemaphore) {
      sem.post(count);
      if (ctx.json) printJson({ posted: count });
      return;
    }
    // An addition never waits.
    sem.opSync({ index: indexIn(sem, index), delta: count });
    if (ctx.json) printJson({ posted: count, index });
  },
};

const stat: Leaf = {
  name: 'stat',
  summary: 'show a semaphore\'s value and waiters (System V: every semaphore of the set, owner, times, limits)',
  args: '<address>',
  minArgs: 1,
  maxArgs: 1,
  details: `${ADDRESS_HELP}\nPOSIX: value, waiters (threads registered as sleeping on it), mode, owner, change time.\n` +
    'System V: per semaphore its value, the processes waiting for it to grow (waitingForIncrease) or to\n' +
    'reach zero (waitingForZero) and the last process that changed it (lastPids); owner, creator, mode,\n' +
    'times, and the kernel limits.',
  options: { owner: OWNER_OPTION },
  async run(ctx) {
    using sem = open(semaphoreAddress(ctx, []), ctx);
    const info = describe(sem);
    if (ctx.json) printJson(info);
    else printFields(info);
  },
};

const rm = removeVerb('sem', 'remove a semaphore (POSIX: unlink the name; System V: IPC_RMID, its waiters fail with EIDRM)', ADDRESS_HELP, removeSemaphore);

/** Removes the semaphore at a command-line address. */
export function removeSemaphore(address: string): void {
  const parsed = parseAddress(address, KIND);
  if (parsed.family === 'posix') NamedSemaphore.unlink(parsed.name);
  else SemaphoreSet.remove(parsed.address);
}

export const semCommand: Group = {
  name: 'sem',
  summary: 'semaphores: POSIX named (/name, sem_open) and System V sets (keys, semget)',
  details: ADDRESS_HELP,
  children: [create, wait, post, stat, rm],
};
