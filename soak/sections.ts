/** The sections of the reliability suite, in the order they run, each with its share of the time. */
import { section as chaos } from './chaos.js';
import { section as exactlyOnce } from './exactly-once.js';
import { section as exhaustion } from './exhaustion.js';
import { section as fuzz } from './fuzz.js';
import { section as leaks } from './leaks.js';
import type { Section } from './report.js';
import { section as security } from './security.js';

/**
 * `weight` shares out the minutes asked for; the security matrix and the
 * exhaustion checks do a fixed amount of work (some seconds) whatever it is.
 */
export const SECTIONS: { section: Section; weight: number }[] = [
  { section: exactlyOnce, weight: 4 },
  { section: chaos, weight: 3 },
  { section: security, weight: 1 },
  { section: exhaustion, weight: 1 },
  { section: fuzz, weight: 2 },
  { section: leaks, weight: 2 },
];
