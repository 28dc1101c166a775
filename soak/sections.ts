/** The sections of the reliability suite, in the order they run, each with its share of the time. */
import type { Section } from './report.js';

export const SECTIONS: { section: Section; weight: number }[] = [];
