import { Counter, Gauge, type Registry } from 'prom-client'
import type { RefreshOutcome } from '../push/refresher.js'

export type NotifyOutcome = 'accepted' | 'ignored' | 'rejected'

const REFRESH_OUTCOMES: readonly RefreshOutcome[] = ['ok', 'error']
const NOTIFY_OUTCOMES: readonly NotifyOutcome[] = ['accepted', 'ignored', 'rejected']

/** CONTRACT §11's instruments, on the gateway's registry. */
export class PushMetrics {
  readonly refreshCalls: Counter<'outcome'>
  readonly notifyCallbacks: Counter<'outcome'>

  constructor(registry: Registry, subscribers: () => number) {
    const registers = [registry]
    new Gauge({
      name: 'mj_gateway_events_subscribers',
      help: 'Open task events streams (server-sent events)',
      registers,
      collect() {
        this.set(subscribers())
      }
    })
    this.refreshCalls = new Counter({
      name: 'mj_gateway_refresh_calls_total',
      help: 'list-by-condition calls of the refresher, by outcome',
      labelNames: ['outcome'],
      registers
    })
    this.notifyCallbacks = new Counter({
      name: 'mj_gateway_notify_callbacks_total',
      help: 'Upstream task callbacks (notifyHook) received: accepted (a watched task), ignored, rejected (wrong secret)',
      labelNames: ['outcome'],
      registers
    })
    for (const o of REFRESH_OUTCOMES) this.refreshCalls.inc({ outcome: o }, 0)
    for (const o of NOTIFY_OUTCOMES) this.notifyCallbacks.inc({ outcome: o }, 0)
  }
}
