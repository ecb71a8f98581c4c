/**
 * Small units whose edge branches the wire tests do not reach: a JWT without `iat`, counting a request out twice,
 * and Redis owner records when a key is missing or MULTI fails.
 */
import t from 'tap'
import { createSigner } from 'fast-jwt'
import { JwtIdentities } from '../src/clients/jwt-identity.js'
import { ClientInflight } from '../src/clients/client-inflight.js'
import { RedisOwnerRecords } from '../src/redis/owner-records.js'
import type { RedisConnection } from '../src/redis/connection.js'

const SECRET = 'coverage-units-secret-of-32-bytes!!'

t.test('a JWT without iat: its lifetime is what is left of it', async (t) => {
  const ids = new JwtIdentities({ key: SECRET, algorithms: ['HS256'], maxTtlSeconds: 600 })
  const now = Date.now()
  const sign = (exp: number): string => createSigner({ key: SECRET, noTimestamp: true })({ sub: 'alice', exp })
  t.equal(ids.subject(sign(Math.floor(now / 1000) + 300), now), 'alice', '300 s left of a 600 s cap: accepted')
  t.equal(ids.subject(sign(Math.floor(now / 1000) + 3600), now), undefined, 'an hour left: longer than the cap, refused')
})

t.test('ClientInflight: the leave function counts out once', async (t) => {
  const inflight = new ClientInflight(1)
  const alice = { name: 'alice' } as Parameters<ClientInflight['enter']>[0]
  const leave = inflight.enter(alice)
  t.type(leave, 'function')
  t.equal(inflight.enter(alice), undefined, 'at the cap')
  leave?.()
  leave?.()
  const again = inflight.enter(alice)
  t.type(again, 'function', 'counted out: admitted again')
  t.equal(inflight.enter(alice), undefined, 'the second leave did not count out a second time')
  again?.()
})

function fakeRedis(client: Record<string, unknown>): RedisConnection {
  return { within: <T>(p: Promise<T>) => p, client } as unknown as RedisConnection
}

t.test('RedisOwnerRecords: a missing key has no owner; a failed or dropped MULTI', async (t) => {
  const owners = new RedisOwnerRecords(fakeRedis({ mget: async () => ['bob', null] }), 'ns')
  t.same(await owners.owners(['1', '2']), ['bob', undefined], 'a nil reply is no owner')

  const boom = new Error('ERR incr failed')
  const multi = (result: unknown) => ({ multi: () => ({ incr: () => ({ pexpire: () => ({ exec: async () => result }) }) }) })
  await t.rejects(new RedisOwnerRecords(fakeRedis(multi([[boom, null]])), 'ns').increment('alice', '2026-12-03', 1000), boom, 'an INCR error is thrown')
  t.equal(await new RedisOwnerRecords(fakeRedis(multi(null)), 'ns').increment('alice', '2026-12-03', 1000), 0, 'an aborted MULTI (null) counts 0')
  t.equal(await new RedisOwnerRecords(fakeRedis(multi([[null, 3]])), 'ns').increment('alice', '2026-12-03', 1000), 3)
})
