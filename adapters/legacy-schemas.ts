// Building blocks of the legacy payload schemas, sized so that whatever passes
// them also fits a notification (title ≤ 200, message ≤ 2000, printable ids).
import { Type } from '@sinclair/typebox'

/** An identifier: printable, no control characters (it ends up in keys and log lines). */
export const LegacyToken = (max: number) => Type.String({ minLength: 1, maxLength: max, pattern: '^[^\\u0000-\\u001f]+$' })
export const LegacyTitle = Type.String({ minLength: 1, maxLength: 200 })
export const LegacyMessage = Type.String({ maxLength: 2000 })
