/**
 * The connection's circuit breaker in process (docs/operations-resilience.md, "Redis"): a Redis that hangs opens
 * it; while open, the shared tier does not ask Redis; probes from a timer ask again (a probe that gets no answer
 * schedules the next) and the first answer closes it. Write-back stops as soon as Redis is not up.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { pino } from 'pino'
import { COMMAND_TIMEOUT_MS, RedisConnection } from '../src/redis/connection.js'
import { CircuitBreaker } from '../src/redis/breaker.js'
import { RedisSharedTier } from '../src/redis/shared-tier.js'
import { startRedisServer } from './helpers/redis-server.js'

const rules = { ttlSeconds: 3600, urlExpiryMarginSeconds: 300, pollCacheMs: 1000 }
const body = (id: string): Buffer => Buffer.from(JSON.stringify({ id, status: 'SUCCESS', progress: '100%' }))

async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(10)) if (cond()) return true
  return cond()
}

t.test('a hung Redis opens the breaker; misses do not wait; failed probes retry; an answer closes it', async (t) => {
  const redis = await startRedisServer(t)
  t.teardown(() => redis.resume())
  const lines: string[] = []
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) })
  const states: boolean[] = []
  const conn = new RedisConnection({ url: redis.url, log, onState: (up) => void states.push(up), breaker: { threshold: 3, coolOffMs: 100 } })
  t.teardown(() => conn.close())
  // no memory tier: coming up writes nothing back
  const tier = new RedisSharedTier(conn, { namespace: 'fp-probe', lockTtlMs: 1000, lockWaitMs: 100, rules })
  t.ok(await until(() => conn.up), 'up')
  await sleep(50)
  t.same(await redis.admin().keys('mjgw:fp-probe:*'), [], 'nothing written back without a memory tier')
  await redis.admin().set('mjgw:fp-probe:task:t1', body('t1'), 'PX', 60_000)
  t.ok(await tier.get('t1'), 'a stored task is found while Redis answers')

  redis.pause()
  for (let i = 0; i < 3; i++) await t.rejects(conn.within(conn.client.ping()), /timed out/)
  t.equal(conn.up, false, 'three timeouts in a row: not up')
  t.equal(states.at(-1), false, 'the state change is reported')
  // nothing is sent to Redis: a command sent would wait for the 200 ms timeout
  let sent = 0
  const sendCommand = conn.client.sendCommand.bind(conn.client)
  conn.client.sendCommand = ((...args: Parameters<typeof sendCommand>) => {
    sent++
    return sendCommand(...args)
  }) as typeof conn.client.sendCommand
  t.equal(await tier.get('t1'), undefined, 'breaker open: a miss')
  t.equal(sent, 0, 'without asking Redis')
  conn.client.sendCommand = sendCommand
  // a few probes go unanswered meanwhile (each times out, the next is scheduled)
  await sleep(700)
  t.equal(conn.up, false, 'unanswered probes keep it open')

  redis.resume()
  t.ok(await until(() => conn.up), 'a probe got an answer: up again')
  t.equal(states.at(-1), true)
  t.ok(lines.some((l) => l.includes('redis: answering again')))
  t.ok(await tier.get('t1'), 'found again')
})

t.test('write-back stops when Redis stops being up part way', async (t) => {
  const redis = await startRedisServer(t)
  const log = pino({ level: 'silent' })
  const conn = new RedisConnection({ url: redis.url, log, onState: () => undefined, breaker: { threshold: 1, coolOffMs: 60_000 } })
  t.teardown(() => conn.close())
  const breaker = (conn as unknown as { breaker: { timeout(): void } }).breaker
  function* memory(): Generator<{ id: string; body: Buffer; ttlMs: number }> {
    for (let i = 0; i < 250; i++) {
      // after the first batch, Redis stops answering (one timeout opens this breaker)
      if (i === 100) breaker.timeout()
      yield { id: `wb-${i}`, body: body(`wb-${i}`), ttlMs: 60_000 }
    }
  }
  new RedisSharedTier(conn, { namespace: 'fp-stop', lockTtlMs: 1000, lockWaitMs: 100, rules, memory })
  t.ok(await until(() => conn.client.status === 'ready'), 'connected')
  await sleep(200)
  t.equal(conn.up, false, 'breaker open')
  t.equal((await redis.admin().keys('mjgw:fp-stop:task:*')).length, 100, 'only the first batch was written')
})

t.test('an answer that arrived in time while this process was busy is taken, not counted as a timeout', async (t) => {
  const redis = await startRedisServer(t)
  const states: boolean[] = []
  // one timeout would open this breaker
  const conn = new RedisConnection({ url: redis.url, log: pino({ level: 'silent' }), onState: (up) => void states.push(up), breaker: { threshold: 1, coolOffMs: 60_000 } })
  t.teardown(() => conn.close())
  t.ok(await until(() => conn.up), 'up')
  // Sent from the loop's check phase, then the loop is blocked past the command timeout: when it turns again, its
  // timers run first (the timeout is due) and only then its I/O (Redis's answer, there all along).
  const answer = await new Promise<Promise<string>>((resolve) =>
    setImmediate(() => {
      const sent = conn.within(conn.client.ping())
      const end = Date.now() + COMMAND_TIMEOUT_MS + 150
      while (Date.now() < end) {
        // busy
      }
      resolve(sent)
    })
  )
  t.equal(answer, 'PONG', 'the answer is taken')
  // the timeout's own turn comes after the answer's: let it pass
  await sleep(50)
  t.equal(conn.up, true, 'and the breaker did not count a timeout')
  t.same(states, [true])
})

t.test('a probe still out when the breaker stops schedules no other', async (t) => {
  let probes = 0
  const breaker = new CircuitBreaker({
    threshold: 1,
    coolOffMs: 10,
    probe: () => {
      probes++
      return sleep(40).then(() => false)
    },
    onChange: () => undefined
  })
  breaker.timeout()
  t.equal(breaker.open, true)
  t.ok(await until(() => probes === 1), 'a probe is out')
  breaker.stop()
  await sleep(200)
  t.equal(probes, 1, 'its failure scheduled no further probe')
})
