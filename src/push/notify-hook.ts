import { createHmac, timingSafeEqual } from 'node:crypto'
import { foldedKey, withoutMembers, type Member } from '../http/json-members.js'

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

/** The upstream would call any URL a client names in `notifyHook`: that member goes, every other byte stays. */
export function withoutNotifyHook(body: Buffer, members: readonly Member[]): Buffer {
  return withoutMembers(body, members, (m) => foldedKey(body, m) === 'notifyhook')
}

/**
 * A submit body's notifyHook, as bytes (every other byte as the client sent it): the client's own is kept only
 * with ALLOW_NOTIFY_HOOK=true; otherwise, with PUBLIC_URL set, it is the gateway's callback URL, and without
 * PUBLIC_URL there is none.
 */
export function submitBody(body: Buffer, members: readonly Member[], allowClientHook: boolean, gatewayHook: string | undefined): Buffer {
  const rest = withoutNotifyHook(body, members)
  const clientHook = rest !== body
  if (allowClientHook && (gatewayHook === undefined || clientHook)) return body
  if (gatewayHook === undefined) return rest
  // the gateway's hook goes in just before the object's closing brace
  const close = rest.lastIndexOf(0x7d)
  const empty = members.every((m) => foldedKey(body, m) === 'notifyhook')
  const member = `${empty ? '' : ','}"notifyHook":${JSON.stringify(gatewayHook)}`
  return Buffer.concat([rest.subarray(0, close), Buffer.from(member), rest.subarray(close)])
}
