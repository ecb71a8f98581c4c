/**
 * Tenancy test helpers (docs/tenancy.md): several clients (static tokens and JWT users) in front of the simulated
 * upstream, and a JWT signer.
 */
import { createSigner } from 'fast-jwt'
import type { FastifyInstance } from 'fastify'
import { startGateway as startHarness, UPSTREAM_KEY } from './gateway.js'
import { startSimulatedUpstream, type SimulatedUpstream } from '../../src/demo/simulated-upstream.js'
import type { HttpResult } from './net.js'

export { UPSTREAM_KEY }
export const JWT_SECRET = 'jwt-secret-for-tests-0123456789abcdef'
export const TOKENS = { a: 'token-alpha-7Hq2', b: 'token-bravo-9Kd4', c: 'token-charlie-3Mz8', ops: 'token-ops-5Rt1' } as const
export type Who = keyof typeof TOKENS
/** CLIENT_KEYS with clients a, b, c and an `:all` operator */
export const CLIENT_KEYS = `a:${TOKENS.a},b:${TOKENS.b},c:${TOKENS.c},ops:${TOKENS.ops}:all`

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
export const as = (who: Who): Record<string, string> => bearer(TOKENS[who])

/** an HS256 token for `sub` signed with JWT_SECRET (or `key`), valid for `ttl` seconds */
export function jwtFor(sub: string, opts: { ttlSeconds?: number; key?: string; aud?: string; iss?: string } = {}): string {
  const sign = createSigner({
    key: opts.key ?? JWT_SECRET,
    algorithm: 'HS256',
    expiresIn: (opts.ttlSeconds ?? 600) * 1000,
    ...(opts.aud === undefined ? {} : { aud: opts.aud }),
    ...(opts.iss === undefined ? {} : { iss: opts.iss })
  })
  return sign({ sub })
}

/** an answer with its body parsed when it is JSON */
export interface Reply {
  status: number
  headers: Record<string, string>
  text: string
  json: unknown
}

function reply(r: HttpResult): Reply {
  let json: unknown
  try {
    json = JSON.parse(r.body)
  } catch {
    json = undefined
  }
  return { status: r.status, headers: r.headers, text: r.body, json }
}

export interface TenancyGateway {
  app: FastifyInstance
  logs(): string
  call(method: string, path: string, opts?: { headers?: Record<string, string>; body?: string | Buffer }): Promise<Reply>
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Reply>
}

export interface Tenancy {
  gw: TenancyGateway
  sim: SimulatedUpstream
  /** submits an imagine as `headers`; returns the task id */
  submit(headers: Record<string, string>): Promise<string>
  fetch(id: string, headers: Record<string, string>): Promise<Reply>
  upstreamCalls(): number
}

interface Teardown {
  teardown(fn: () => unknown): void
}

export async function startTenancy(t: Teardown, env: Record<string, string> = {}, upstreamUrl?: string): Promise<Tenancy> {
  const sim = await startSimulatedUpstream({ apiKey: UPSTREAM_KEY, stepMs: 20, failureRatio: 0 })
  t.teardown(() => sim.close())
  const g = await startHarness(
    t,
    { CLIENT_KEYS, CLIENT_JWT_SECRET: JWT_SECRET, TASK_OWNERSHIP: 'auto', POLL_CACHE_MS: '0', RATE_LIMIT_PER_MINUTE: '0', LOG_LEVEL: 'info', EVENT_LOOP_MAX_DELAY_MS: '0', ...env },
    { upstreamUrl: upstreamUrl ?? sim.url }
  )
  const gw: TenancyGateway = {
    app: g.app,
    logs: g.logs,
    call: async (method, path, opts = {}) => reply(await g.request(method, path, { headers: opts.headers ?? {}, body: opts.body })),
    post: async (path, body, headers = {}) => reply(await g.post(path, body, headers))
  }
  return {
    gw,
    sim,
    async submit(headers) {
      const r = await gw.post('/mj/submit/imagine', { prompt: 'a pig --v 6.1' }, headers)
      if (r.status !== 200) throw new Error(`submit: ${r.status} ${r.text}`)
      return (r.json as { result: string }).result
    },
    fetch: (id, headers) => gw.call('GET', `/mj/task/${id}/fetch`, { headers }),
    upstreamCalls: () => sim.stats.requests
  }
}

/** the shared harness's gateway in front of a scriptable fake upstream (setHandler, hang, recorded bodies) */
export async function gatewayWithFake(t: Teardown, env: Record<string, string>) {
  const up: SimulatedUpstream = await startSimulatedUpstream({ inventUnknownTasks: true })
  t.teardown(() => up.close())
  const gw = await startHarness(t, env, { upstreamUrl: up.url })
  return { gw, up }
}
