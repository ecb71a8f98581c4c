import { EventEmitter } from 'node:events'
import type { ServerResponse } from 'node:http'
import t from 'tap'
import { EventStream } from '../src/push/event-stream.js'
import type { TaskState } from '../src/push/task-state.js'

/** a response that records what is written */
function fakeRes(): { res: ServerResponse; chunks: string[]; ended: () => boolean } {
  const e = new EventEmitter() as EventEmitter & Record<string, unknown>
  const chunks: string[] = []
  let ended = false
  Object.assign(e, {
    writableLength: 0,
    writableFinished: false,
    destroyed: false,
    write: (c: string) => (chunks.push(c), true),
    end: () => {
      ended = true
    },
    destroy: () => {
      e.destroyed = true
    },
  })
  return { res: e as unknown as ServerResponse, chunks, ended: () => ended }
}

const state = (version: string, terminal = false): TaskState => ({ id: 'x', version, terminal }) as unknown as TaskState

t.test('EventStream: updates and gone for unknown, finished or closed tasks write nothing', async (t) => {
  const { res, chunks, ended } = fakeRes()
  let closes = 0
  const s = new EventStream(res, ['a', 'b'], undefined, () => closes++)
  s.opened()
  s.update('zzz', Buffer.from('{}'), state('1'))
  t.same(chunks, [], 'an id the stream did not ask for: nothing')
  s.update('a', Buffer.from('{"id":"a"}'), state('1', true))
  t.equal(chunks.length, 1, 'a terminal state of a is written')
  s.update('a', Buffer.from('{"id":"a"}'), state('2'))
  s.gone('a')
  t.equal(chunks.length, 1, 'a is finished: a later update or gone writes nothing')
  s.gone('b')
  t.match(chunks.join(''), /event: error[\s\S]*event: end/, 'b gone: an error, then the end')
  t.ok(ended(), 'the response is ended')
  t.equal(closes, 1)
  const n = chunks.length
  s.update('b', Buffer.from('{"id":"b"}'), state('3'))
  s.gone('b')
  s.heartbeat()
  t.equal(chunks.length, n, 'closed: no update, no error, no heartbeat')
  s.close()
  t.equal(closes, 1, 'close is idempotent')
})
