import { createServer, type Server, type ServerOptions } from 'node:http'
import type { FastifyServerOptions } from 'fastify'
import type { HitLane, Listener } from './hit-lane.js'
import { clientErrorHandler, frameworkErrors, type Authorized } from './early-errors.js'
import type { CorsPolicy } from './cors-policy.js'
import { MAX_HEADER_BYTES } from './request-checks.js'

/** Time limits against slow clients (slowloris, slow bodies, idle sockets). */
export interface Timeouts {
  /** the request head must arrive within this */
  headersMs: number
  /** the whole request (head and body) must arrive within this */
  requestMs: number
  /** an idle keep-alive connection is closed after this (above the usual 60 s of load balancers) */
  keepAliveMs: number
  /** a socket with no traffic either way is closed after this; must exceed the upstream budget */
  idleMs: number
  /** how often Node checks the two request timeouts (its default, 30 s, lets a slowloris linger) */
  checkIntervalMs: number
}

export function defaultTimeouts(upstreamTimeoutMs: number): Timeouts {
  return {
    headersMs: 10_000,
    requestMs: 60_000,
    keepAliveMs: 72_000,
    idleMs: Math.max(60_000, upstreamTimeoutMs + 10_000),
    checkIntervalMs: 1_000
  }
}

/** Fastify options of the server: size limits and timeouts enforced before any hook runs, and the answers to them. */
export type ServerSettings = Pick<
  FastifyServerOptions,
  'connectionTimeout' | 'keepAliveTimeout' | 'requestTimeout' | 'clientErrorHandler' | 'frameworkErrors'
> & { http: ServerOptions; connectionTimeout: number; keepAliveTimeout: number; requestTimeout: number }

/** `cors` and `authorized` shape the answers written before any hook runs (early-errors.ts). */
export function serverSettings(t: Timeouts, cors: CorsPolicy, authorized: Authorized): ServerSettings {
  return {
    connectionTimeout: t.idleMs,
    keepAliveTimeout: t.keepAliveMs,
    requestTimeout: t.requestMs,
    // a request without Host reaches the gateway, which answers it in the contract's shape (request-checks.ts)
    http: { maxHeaderSize: MAX_HEADER_BYTES, headersTimeout: t.headersMs, connectionsCheckingInterval: t.checkIntervalMs, requireHostHeader: false },
    clientErrorHandler: clientErrorHandler(cors),
    frameworkErrors: frameworkErrors(cors, authorized)
  }
}

/**
 * The gateway's node:http server. Fastify builds it through `factory` (its serverFactory) and hands over its own
 * request handler; `front()` then says who meets each request first: the hit lane, which passes what it does not
 * answer on to Fastify's handler, or (HIT_LANE=off) Fastify's handler itself.
 */
export class GatewayServer {
  private server: Server | undefined
  private fastifyHandler: Listener | undefined

  constructor(private readonly settings: ServerSettings) {}

  /** Fastify's serverFactory (called while Fastify() runs, before anything can listen) */
  readonly factory = (handler: Listener): Server => {
    const s = createServer(this.settings.http)
    s.keepAliveTimeout = this.settings.keepAliveTimeout
    s.requestTimeout = this.settings.requestTimeout
    s.setTimeout(this.settings.connectionTimeout)
    this.server = s
    this.fastifyHandler = handler
    return s
  }

  /** Fastify's own request handler: where the hit lane sends what it declines */
  get fastify(): Listener {
    return this.fastifyHandler as Listener
  }

  /** Every request meets `lane` first, or Fastify when there is none. Called once, before listening. */
  front(lane: HitLane | undefined): void {
    const listener = lane === undefined ? this.fastify : lane.handle
    ;(this.server as Server).on('request', listener)
    // an unknown Expect reaches the gateway too (request-checks.ts answers it 417), instead of Node's bare 417
    ;(this.server as Server).on('checkExpectation', listener)
  }
}
