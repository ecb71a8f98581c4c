import type { IncomingMessage } from 'node:http'
import proxyAddr from '@fastify/proxy-addr'
import type { Config } from '../config.js'

export type TrustFn = (addr: string, hop: number) => boolean

/**
 * TRUST_PROXY as one function, given to Fastify (request.ip, request.host) and used by the hit lane, so both
 * work out the same client address: a hop count trusts that many proxies, a list those addresses or subnets.
 */
export function trustFunction(v: Config['trustProxy']): TrustFn | false {
  if (v === false) return false
  if (v === true) return () => true
  if (typeof v === 'number') return (_addr, hop) => hop < v
  return proxyAddr.compile(v.split(',').map((s) => s.trim()))
}

/** What Fastify's request.ip is for this request. */
export function clientIp(req: IncomingMessage, trust: TrustFn | false): string | undefined {
  if (trust === false) return req.socket.remoteAddress
  const addrs = proxyAddr.all(req, trust)
  return addrs[addrs.length - 1]
}

/** What Fastify's request.host is for this request: x-forwarded-host only from a trusted proxy. */
export function clientHost(req: IncomingMessage, trust: TrustFn | false): string {
  const forwarded = req.headers['x-forwarded-host']
  if (trust !== false && typeof forwarded === 'string' && trust(req.socket.remoteAddress as string, 0)) {
    const last = forwarded.lastIndexOf(',')
    return last === -1 ? forwarded.trim() : forwarded.slice(last + 1).trim()
  }
  return req.headers.host ?? ''
}
