import t from 'tap'
import { TaskCache } from '../src/cache/task-cache.js'
import { WatchHub } from '../src/push/watch-hub.js'
import { taskState, type TaskState } from '../src/push/task-state.js'
import type { TaskListener } from '../src/push/watch-hub.js'
import { taskBody } from '../src/demo/simulated-upstream.js'

t.test('WatchHub.apply: a terminal state is final, an older body replayed after it changes nothing', async (t) => {
  const cache = new TaskCache({ maxBytes: 1 << 20, staleIfErrorMs: 0 })
  const hub = new WatchHub({ cache, rules: { ttlSeconds: 60, urlExpiryMarginSeconds: 300, pollCacheMs: 0 }, intervalMs: 1000, watchIdleMs: 30_000 })
  const seen: string[] = []
  const listener: TaskListener = { update: (_id, body) => seen.push(body.toString()), gone: () => {} }
  const now = Date.now()
  const running = Buffer.from(JSON.stringify(taskBody('x', 'IN_PROGRESS')))
  const done = Buffer.from(JSON.stringify(taskBody('x', 'SUCCESS')))
  const state = taskState(running) as TaskState
  hub.subscribe('x', listener, running, state, now)
  t.equal(hub.apply('x', done, now + 1), true, 'the terminal state is news')
  t.equal(hub.apply('x', running, now + 2), false, 'an older body after it is not')
  t.same(seen, [done.toString()], 'the listener heard only the terminal state')
  t.same(hub.subscribe('x', listener, running, state, now + 3).body, done, 'the hub still holds the terminal body')
})
