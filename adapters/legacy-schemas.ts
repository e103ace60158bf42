// Building blocks of the legacy payload schemas, sized so that whatever passes
// them also fits a notification (title ≤ 200, message ≤ 2000, printable ids).
import { Type } from '@sinclair/typebox'

export { Identifier } from '../src/schemas.js'
export const LegacyTitle = Type.String({ minLength: 1, maxLength: 200 })
export const LegacyMessage = Type.String({ maxLength: 2000 })
