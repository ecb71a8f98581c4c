import t from 'tap'
import { Ownership, submittedTask, type OwnerRecords } from '../src/clients/ownership.js'
import type { ClientIdentity } from '../src/clients/client-keys.js'
import { EmbeddedStore } from '../src/storage/embedded-store.js'
import { RedisOwnerRecords } from '../src/redis/owner-records.js'
import { RedisConnection } from '../src/redis/connection.js'
import { pino } from 'pino'
import { tempDataDir } from './helpers/data-dir.js'
import { startRedisServer } from './helpers/redis-server.js'

const who = (name: string, all = false): ClientIdentity => ({ authorized: true, name, owner: name, all, label: name })

function ownership(store: OwnerRecords, ownerlessVisible = false): { o: Ownership; denied: string[]; errors: unknown[] } {
  const denied: string[] = []
  const errors: unknown[] = []
  const o = new Ownership({ enabled: true, ownerlessVisible, ttlMs: 60_000, store, onDenied: (r) => denied.push(r), onStoreError: (e) => errors.push(e) })
  return { o, denied, errors }
}

t.test('docs/tenancy.md §2 the id a submit answer names: result of code 1, 21 or 22, a string or an integer', async (t) => {
  t.same(submittedTask(Buffer.from('{"code":1,"result":"17306"}')), { id: '17306', existing: false })
  t.same(submittedTask(Buffer.from('{"code":21,"result":1730621826053455}')), { id: '1730621826053455', existing: true })
  t.same(submittedTask(Buffer.from('{"code":22,"result":"x"}')), { id: 'x', existing: false })
  for (const body of ['{"code":4,"result":"x"}', '{"code":1,"result":""}', '{"code":1,"result":null}', '{"code":1,"result":1.5}', '{"code":1}', 'null', '[1]', 'not json', '']) {
    t.equal(submittedTask(Buffer.from(body)), undefined, body)
  }
})

t.test('docs/tenancy.md §3 a store that throws at once or rejects denies and reports; an :all client never asks it', async (t) => {
  const boom = new Error('disk gone')
  const sync = ownership({ owners: () => { throw boom }, record: () => { throw boom } })
  t.equal(sync.o.canRead(who('a'), 'x'), false)
  t.same(sync.errors, [boom])
  t.equal(sync.o.canRead(who('ops', true), 'x'), true)
  await sync.o.record(who('a'), 'mine')
  t.equal(sync.errors.length, 2, 'a failed write is reported')
  t.equal(sync.o.canRead(who('a'), 'mine'), true, 'and remembered by this replica')
  await sync.o.record(who('a'), 'existing', true)
  t.equal(sync.errors.length, 3, 'reported')
  t.equal(sync.o.canRead(who('a'), 'existing'), false, 'an existing task (code 21) is not given to the submitter when the store cannot say whose it is')

  const async = ownership({ owners: () => Promise.reject(boom), record: () => Promise.resolve(undefined) })
  t.equal(await async.o.canRead(who('a'), 'x'), false)
  await t.rejects(Promise.resolve(async.o.assertReadable(who('a'), 'x', '/r')), { code: 'MJGW_TASK_NOT_FOUND' })
  t.same(await async.o.readable(who('a'), ['x', 'y'], '/list'), [])
  t.same(async.denied, ['/r', '/list', '/list'])
})

t.test('docs/tenancy.md §2 readable(): owners from memory and the store, in order; ownerless by OWNERLESS_TASKS', async (t) => {
  const records = new Map([['b1', 'b']])
  const store: OwnerRecords = { owners: async (ids) => ids.map((id) => records.get(id)), record: () => undefined }
  const { o } = ownership(store, true)
  await o.record(who('a'), 'a1')
  t.same(await o.readable(who('a'), ['b1', 'a1', 'none'], '/list'), ['a1', 'none'])
  t.same(await o.readable(who('b'), ['a1', 'b1'], '/list'), ['b1'])
  t.equal(o.canRead(who('b'), 'b1'), true, 'the owner found is remembered: answered at once')
  const off = new Ownership({ enabled: false, ownerlessVisible: false, ttlMs: 1, store, onDenied: () => undefined, onStoreError: () => undefined })
  t.same(await off.readable(who('a'), ['b1'], '/list'), ['b1'])
  await off.record(who('a'), 'z')
  t.equal(off.canRead(who('b'), 'z'), true)
})

t.test('docs/tenancy.md §2 the first record wins, in the embedded store and in Redis: a later one is refused and names the owner', async (t) => {
  const embedded = new EmbeddedStore(tempDataDir(t), 'fp-first')
  t.teardown(() => embedded.close())
  const redis = await startRedisServer(t)
  const conn = new RedisConnection({ url: redis.url, log: pino({ level: 'silent' }), onState: () => undefined })
  t.teardown(() => conn.close())
  for (let i = 0; i < 100 && !conn.up; i++) await new Promise((r) => setTimeout(r, 20))
  for (const [name, store] of [['embedded', embedded], ['redis', new RedisOwnerRecords(conn, 'fp-first')]] as const) {
    t.equal(await store.record('t1', 'a', 60_000), undefined, `${name}: recorded`)
    t.equal(await store.record('t1', 'b', 60_000), 'a', `${name}: a second owner is refused`)
    t.same(await store.owners(['t1']), ['a'], `${name}: the first stays`)
  }
  // through Ownership: a client naming an owned task in a later submit answer does not take it
  const { o } = ownership(embedded)
  await o.record(who('b'), 't1')
  t.equal(o.canRead(who('a'), 't1'), true)
  t.equal(o.canRead(who('b'), 't1'), false)
})
