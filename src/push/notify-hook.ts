import { createHmac, timingSafeEqual } from 'node:crypto'
import { withoutNotifyHook } from '../routes/submit.js'

/** the callback route, outside /mj (the upstream presents no client token) */
export const NOTIFY_ROUTE = '/gateway/notify/:secret'

/**
 * The secret in the callback URL: derived from the upstream key, so every replica with that key knows it and no
 * state is needed; one-way, so it says nothing about the key.
 */
export function notifySecret(upstreamKey: string): string {
  return createHmac('sha256', upstreamKey).update('mj-gateway notifyHook v1').digest('base64url').slice(0, 32)
}

export function notifyUrl(publicUrl: string, secret: string): string {
  return `${publicUrl}/gateway/notify/${secret}`
}

/** constant-time comparison of a presented secret */
export function secretMatches(presented: string, secret: string): boolean {
  const a = Buffer.from(presented)
  const b = Buffer.from(secret)
  return a.length === b.length && timingSafeEqual(a, b)
}

type JsonObject = Record<string, unknown>

/**
 * A submit body's notifyHook: the client's own is kept only with ALLOW_NOTIFY_HOOK=true; otherwise, with
 * PUBLIC_URL set, it is the gateway's callback URL, and without PUBLIC_URL there is none.
 */
export function submitBody(body: JsonObject, allowClientHook: boolean, gatewayHook: string | undefined): JsonObject {
  const rest = withoutNotifyHook(body)
  if (allowClientHook && (gatewayHook === undefined || Object.keys(rest).length < Object.keys(body).length)) return body
  return gatewayHook === undefined ? rest : { ...rest, notifyHook: gatewayHook }
}
