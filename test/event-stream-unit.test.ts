import t from 'tap'
import { EventStream } from '../src/push/event-stream.js'
import type { StreamOutput } from '../src/push/stream-output.js'
import type { TaskState } from '../src/push/task-state.js'

/** an output that records what is written */
function fakeOutput(): { out: StreamOutput; chunks: string[]; ended: () => boolean } {
  const chunks: string[] = []
  let ended = false
  const out: StreamOutput = {
    waiting: 0,
    write: (c) => void chunks.push(c),
    end: () => {
      ended = true
    },
    destroy: () => undefined,
    onClose: () => undefined
  }
  return { out, chunks, ended: () => ended }
}

const state = (version: string, terminal = false): TaskState => ({ id: 'x', version, terminal }) as unknown as TaskState

t.test('EventStream: updates and gone for unknown, finished or closed tasks write nothing', async (t) => {
  const { out, chunks, ended } = fakeOutput()
  let closes = 0
  const s = new EventStream(out, ['a', 'b'], undefined, () => closes++)
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
