import t from 'tap'
import pino from 'pino'
import type { RedisConnection } from '../src/redis/connection.js'
import { RedisRelay } from '../src/push/redis-relay.js'
import { WatchHub } from '../src/push/watch-hub.js'
import { TaskCache } from '../src/cache/task-cache.js'

t.test('RedisRelay.watched: a Redis failure is warned about and counts as not watched', async (t) => {
  const warned: string[] = []
  const failing = {
    client: { defineCommand: () => undefined, zscore: () => Promise.reject(new Error('ECONNREFUSED')) },
    within: <T>(p: Promise<T>) => p,
    warn: (kind: string) => warned.push(kind),
  } as unknown as RedisConnection
  const hub = new WatchHub({ cache: new TaskCache({ maxBytes: 1 << 20, staleIfErrorMs: 0 }), rules: { ttlSeconds: 60, urlExpiryMarginSeconds: 0, pollCacheMs: 0 }, intervalMs: 100, watchIdleMs: 0 })
  const relay = new RedisRelay(failing, { hub, namespace: 'unit', intervalMs: 100, log: pino({ level: 'silent' }) })
  t.equal(await relay.watched('x'), false)
  t.same(warned, ['push-watched'])
})
