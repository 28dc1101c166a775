/**
 * What the charts of docs/ share: the two placements' colours and their
 * legend, bar sizes, and text made safe for SVG.
 */

/** Each placement: its name in the results, its colour, its legend. */
export const PLACEMENTS = [['pinned', '#1f77b4', 'pinned (one CPU)'], ['unpinned', '#ff7f0e', 'unpinned']] as const;

/** A bar's height, and a row's (one bar per placement, and a gap). */
export const BAR_H = 9;
export const ROW_H = 2 * BAR_H + 6;

export const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The legend of the placements along the bottom of a chart `height` high. */
export function placementLegend(height: number): string[] {
  return PLACEMENTS.map(([, colour, label], i) =>
    `<rect x="${20 + i * 140}" y="${height - 16}" width="10" height="10" fill="${colour}"/><text x="${34 + i * 140}" y="${height - 7}" font-size="11">${label}</text>`);
}
