import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify'
import type { Bindings, ChildLoggerOptions, LogFn, Logger } from 'pino'

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
const LEVEL_VALUES: Readonly<Record<Level, number>> = { fatal: 60, error: 50, warn: 40, info: 30, debug: 20, trace: 10 }

/**
 * `request.log` without a pino child per request. Fastify builds one for every request (it serializes the request
 * id binding up front); this one builds it on the first call at an enabled level, so at LOG_LEVEL=warn a request
 * that logs nothing costs one small object. Once built, every call goes to the real child, as before.
 */
class LazyRequestLogger {
  declare fatal: LogFn
  declare error: LogFn
  declare warn: LogFn
  declare info: LogFn
  declare debug: LogFn
  declare trace: LogFn
  private real: FastifyBaseLogger | undefined

  constructor(
    private readonly parent: Logger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions
  ) {}

  /** the real child, built on first use */
  get logger(): FastifyBaseLogger {
    this.real ??= this.parent.child(this.bindings, this.options)
    return this.real
  }

  /** the logger to write a line at `levelValue` with, or undefined while that level is off */
  writerFor(levelValue: number): FastifyBaseLogger | undefined {
    return this.real === undefined && levelValue < this.parent.levelVal ? undefined : this.logger
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger.child(bindings, options)
  }

  get level(): string {
    return (this.real ?? this.parent).level
  }

  set level(level: string) {
    this.logger.level = level
  }

  silent(): void {}
}

for (const level of Object.keys(LEVEL_VALUES) as Level[]) {
  const value = LEVEL_VALUES[level]
  LazyRequestLogger.prototype[level] = function (this: LazyRequestLogger, ...args: unknown[]): void {
    const logger = this.writerFor(value)
    if (logger !== undefined) Reflect.apply(logger[level], logger, args)
  } as LogFn
}

/** Fastify's childLoggerFactory: options (a route's own level or serializers) get a real child at once. */
export const lazyChildLogger: NonNullable<FastifyServerOptions['childLoggerFactory']> = (logger, bindings, options) => {
  if (options.level !== undefined || options.serializers !== undefined) return logger.child(bindings, options)
  return new LazyRequestLogger(logger as Logger, bindings, options)
}
