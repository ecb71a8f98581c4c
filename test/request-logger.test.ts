import { Writable } from 'node:stream'
import pino from 'pino'
import t from 'tap'
import { lazyChildLogger } from '../src/logging/request-logger.js'

function root(level: string): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk.toString())
      cb()
    }
  })
  return { logger: pino({ level }, stream), lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) }
}

// Fastify calls the factory with (logger, bindings, options, rawRequest); the request is not used.
const make = (logger: pino.Logger, options: pino.ChildLoggerOptions = {}) =>
  lazyChildLogger.call(undefined as never, logger, { reqId: 'r1' }, options, undefined as never)

t.test('request.log writes like a pino child, with the request id, only at enabled levels', async (t) => {
  const { logger, lines } = root('warn')
  const log = make(logger)
  log.info('not written')
  log.debug('not written')
  t.same(lines(), [], 'a disabled level writes nothing (and builds no child)')
  t.equal(log.level, 'warn', 'reports the level of its parent')
  log.warn({ a: 1 }, 'written')
  t.match(lines(), [{ reqId: 'r1', a: 1, msg: 'written', level: 40 }])
  log.level = 'debug'
  log.debug('now written')
  t.equal(log.level, 'debug')
  t.match(lines()[1], { reqId: 'r1', msg: 'now written' })
  log.child({ sub: 2 }).error('from a grandchild')
  t.match(lines()[2], { reqId: 'r1', sub: 2, msg: 'from a grandchild' })
  log.silent('nothing')
  t.equal(lines().length, 3)
})

t.test('a route with its own level or serializers gets a real pino child at once', async (t) => {
  const { logger, lines } = root('info')
  const log = make(logger, { level: 'debug' })
  log.debug('route-level debug')
  t.match(lines(), [{ reqId: 'r1', msg: 'route-level debug' }])
})
