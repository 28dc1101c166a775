/**
 * `ipckit signal send|wait|list`.
 * @internal
 * @module
 */
import {
  type SignalInfo, type SignalTarget, listSignals, listenForSignals, sendSignal, signalName, signalNumber,
} from '../../signal.js';
import { ConsumerOutput } from '../output.js';
import { type Group, intOption, jsonText, type Leaf, printJson, usageError } from '../program.js';

/** The fields of a delivered signal, as `--json` prints them. */
export function signalJson(info: SignalInfo): Record<string, unknown> {
  const { signal, number, pid, uid, code, origin, value } = info;
  return { signal, number, pid, uid, code, origin, value };
}

/** One line describing a delivered signal. */
export function describeSignal(info: SignalInfo): string {
  const from = info.pid === null
    ? `from the kernel or the terminal (code ${info.code}, no sender pid)`
    : `from pid ${info.pid} (uid ${info.uid}) by ${info.origin}`;
  return `${info.signal} (${info.number}) ${from}${info.value === null ? '' : `, value ${info.value}`}`;
}

/** `1234` is a process, `-1234` the process group 1234. */
function parseTarget(text: string): SignalTarget {
  const match = /^(-?)([0-9]+)$/.exec(text);
  const n = match ? Number(match[2]) : NaN;
  if (!match || !Number.isSafeInteger(n) || n < 1 || n > 2 ** 31 - 1) {
    throw usageError(`The target must be a pid (1234) or a process group as a negative number (-1234); got "${text}".`);
  }
  if (match[1] === '-') {
    if (n === 1) throw usageError('-1 is not a process group: kill(-1) would signal every process of this user. Name a real group.');
    return { group: n };
  }
  return n;
}

const send: Leaf = {
  name: 'send',
  summary: 'send a signal to a process (kill), a process group, or with a value (sigqueue)',
  args: '<pid|-pgid> <signal>',
  minArgs: 2,
  maxArgs: 2,
  details: 'The signal is a name (SIGTERM, TERM, SIGRTMIN+1) or a number. A negative target is a process group.\n' +
    'With --value the signal is queued with sigqueue and the receiver sees the value (a single pid only).',
  options: { value: { type: 'string', value: 'N', description: 'an integer to send with the signal (sigqueue)' } },
  async run(ctx) {
    const [targetText, sigText] = ctx.positionals as [string, string];
    const target = parseTarget(targetText);
    const number = signalNumber(sigText);
    const value = intOption(ctx, 'value', -(2 ** 53) + 1, 2 ** 53 - 1);
    sendSignal(target, number, value === undefined ? {} : { value });
    if (ctx.json) printJson({ signal: signalName(number), number, target, value: value ?? null });
  },
};

const wait: Leaf = {
  name: 'wait',
  summary: 'wait for signals and print who sent them (pid, uid, value)',
  args: '<signal...>',
  minArgs: 1,
  maxArgs: 64,
  details: 'Takes the signals from the moment it prints "waiting ..." on stderr (with its pid) until it has\n' +
    '--count of them; none arriving in between is lost. A timeout exits 1 with ERR_IPC_TIMEOUT.\n' +
    'With --json: one {"signal", "number", "pid", "uid", "code", "origin", "value"} per signal on stdout, and\n' +
    '{"waiting": {"signals": [...], "pid": n}} on stderr instead of the "waiting ..." line.\n' +
    'Each signal is printed before the next is taken. Once stdout\'s reader is gone, no signal is taken: exit 1\n' +
    'with EPIPE. A signal taken and then not printed is named on stderr as lost, and the exit status is 1.',
  options: {
    count: { type: 'string', value: 'N', description: 'signals to wait for (default 1)' },
    timeout: { type: 'string', value: 'MS', description: 'wait at most MS milliseconds for each signal' },
  },
  async run(ctx) {
    const count = intOption(ctx, 'count', 1, 2 ** 31 - 1, 1)!;
    const timeout = intOption(ctx, 'timeout', 0, 2 ** 31 - 1);
    using listener = listenForSignals(ctx.positionals.map((s) => signalNumber(s)));
    process.stderr.write(ctx.json
      ? `${jsonText({ waiting: { signals: listener.signals, pid: process.pid } })}\n`
      : `waiting for ${listener.signals.join(', ')} in pid ${process.pid}\n`);
    const ofCount = (n: number): string => `${n} of ${count} signal${count === 1 ? '' : 's'}`;
    let printed = 0;
    using out = new ConsumerOutput(() => ({ message: `stdout's reader left after ${ofCount(printed)}. No more signals were taken.` }));
    while (printed < count) {
      const info = await out.take((signal) => listener.receive({ ...(timeout === undefined ? {} : { timeout }), signal }));
      await out.print(ctx.json ? `${jsonText(signalJson(info))}\n` : `${describeSignal(info)}\n`, (reason) => ({
        message: `Signal ${printed + 1} of ${count}, ${describeSignal(info)}, was taken but could not be printed: ${reason}. It is lost.`,
        details: { lost: signalJson(info) },
      }));
      printed++;
    }
  },
};

const list: Leaf = {
  name: 'list',
  summary: 'every signal: number, name, default action, and whether it can be handled',
  args: '',
  minArgs: 0,
  maxArgs: 0,
  details: 'With --json: an array of {"number", "name", "defaultAction", "catchable"}.',
  options: {},
  async run(ctx) {
    const rows = listSignals();
    if (ctx.json) {
      printJson(rows.map(({ number, name, defaultAction, catchable }) => ({ number, name, defaultAction, catchable })));
      return;
    }
    const lines = [`${'NUM'.padStart(3)}  ${'NAME'.padEnd(12)} ${'DEFAULT'.padEnd(10)} CATCHABLE`];
    for (const row of rows) {
      const catchable = row.catchable ? 'yes' : `no: ${row.reason}`;
      lines.push(`${String(row.number).padStart(3)}  ${row.name.padEnd(12)} ${row.defaultAction.padEnd(10)} ${catchable}`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};

export const signalCommand: Group = {
  name: 'signal',
  summary: 'send signals, wait for them with the sender\'s identity, list them',
  children: [send, wait, list],
};
