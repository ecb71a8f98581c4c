import createError from '@fastify/error'
import { BadRequestError } from '../http/errors.js'
import type { ScanFailure } from '../http/json-members.js'

/** the codes Fastify's own parser and schema gave before (clients may match them), and docs/tenancy.md's for depth */
export const NotAnObjectError = createError('FST_ERR_VALIDATION', 'body must be a JSON object', 400)
const InvalidJsonError = createError('FST_ERR_CTP_INVALID_JSON_BODY', '%s', 400)

/** The error a JSON body refused by scanJsonObject() is answered with. */
export function scanError(kind: ScanFailure, reason: string): Error {
  if (kind === 'type') return new NotAnObjectError()
  if (kind === 'depth') return new BadRequestError(reason)
  return new InvalidJsonError(reason)
}
