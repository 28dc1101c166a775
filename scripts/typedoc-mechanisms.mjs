// A TypeDoc plugin for `npm run docs:api` (see typedoc.json).
//
// Each public export is filed under the mechanism whose module declares it
// (src/message-queue.ts -> message-queue), so docs/api/ has a folder per
// mechanism, named as in src/, docs/ and examples/; what src/internal/
// declares goes to `common`. A `@category` tag in the source takes
// precedence. An export without a comment is filed too, but is given its
// category only while the project is grouped and rendered, not while it is
// validated: it stays undocumented for validation to report.
//
// The meaning of each code of IPC_ERROR_CODES is its value, and is taken as
// its documentation.
import path from 'node:path';
import { Application, Comment, CommentTag, Converter, ReflectionKind } from 'typedoc';

/** Internal modules whose exports belong to one mechanism. */
const INTERNAL = { readiness: 'select' };

export function load(app) {
  const src = path.resolve('src');
  const categories = new Map();
  /** The comments made for exports that have none, by export. */
  const made = new Map();
  const fileUnder = (comment, category) => {
    if (comment.getTag('@category') === undefined) comment.blockTags.push(new CommentTag('@category', [{ kind: 'text', text: category }]));
  };

  app.converter.on(Converter.EVENT_CREATE_DECLARATION, (context, reflection) => {
    if (!reflection.parent?.isProject()) return;
    const file = context.getSymbolFromReflection(reflection)?.declarations?.[0]?.getSourceFile().fileName;
    if (file === undefined) return;
    const [dir, name] = path.relative(src, file).replace(/\.ts$/, '').split(path.sep);
    categories.set(reflection, name === undefined ? dir : INTERNAL[name] ?? 'common');
  });

  // Before the CategoryPlugin (priority -200) groups the project.
  app.converter.on(Converter.EVENT_RESOLVE_END, (context) => {
    for (const [reflection, category] of categories) {
      let comment = reflection.comment ?? reflection.getNonIndexSignatures().find((s) => s.comment)?.comment;
      if (comment === undefined) made.set(reflection, comment = reflection.comment = new Comment());
      fileUnder(comment, category);
    }
    const codes = context.project.getChildByName('IPC_ERROR_CODES');
    for (const code of codes?.type?.declaration?.getChildrenByKind(ReflectionKind.Property) ?? []) {
      if (code.type?.type === 'literal' && typeof code.type.value === 'string') {
        code.comment ??= new Comment([{ kind: 'text', text: code.type.value }]);
      }
    }
  }, 0);
  // After it: validation sees what the source has.
  app.converter.on(Converter.EVENT_RESOLVE_END, () => {
    for (const reflection of made.keys()) reflection.comment = undefined;
  }, -300);
  // Then back, for the router to file each page by its category.
  app.on(Application.EVENT_VALIDATE_PROJECT, () => {
    for (const [reflection, comment] of made) reflection.comment = comment;
  });
}
