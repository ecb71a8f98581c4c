/**
 * 3b. Push: subscribers over server-sent events instead of pollers. 200 subscribers over 20 live tasks, from
 * subscription to the end of every task: upstream calls, time from an upstream status change to the subscriber's
 * event, calls after SUCCESS; then the memory that idle subscribers cost.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { metric, startGateway, startUpstream } from '../lib/candidates.js'
import type { Child } from '../lib/child.js'
import { fmt, type ScenarioReport } from '../lib/report.js'
import type { Settings } from '../lib/settings.js'
import type { MemoryFacts } from '../servers/ipc.js'
import { subscribe, type Subscriber } from '../lib/sse.js'

const INTERVAL_MS = 1000
/** the gateway allows 100 subscribers per client: the load is spread over this many client tokens */
const CLIENTS = 100
const IDLE_GOAL_BYTES = 100 * 1048576
const TERMINAL = new Set(['SUCCESS', 'FAILURE', 'CANCEL'])

interface TaskJson {
  status: string
  submitTime: number
  startTime: number
  finishTime: number
}

function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/** when the simulated upstream's task took the status it now has (src/demo/simulated-upstream.ts timeline) */
function changedAt(task: TaskJson, stepMs: number): number {
  if (TERMINAL.has(task.status)) return task.finishTime
  if (task.status === 'IN_PROGRESS') return task.submitTime + 2 * stepMs
  return task.startTime
}

async function openAll(urls: string[], batch: number): Promise<Subscriber[]> {
  const subs: Subscriber[] = []
  for (let i = 0; i < urls.length; i += batch) {
    const part = urls.slice(i, i + batch).map((url, j) => subscribe(url, `bench-client-${(i + j) % CLIENTS}`))
    await Promise.all(part.map((s) => s.opened))
    subs.push(...part)
  }
  return subs
}

export async function push(s: Settings): Promise<ScenarioReport> {
  const { subscribers, tasks, stepMs, idleSubscribers, idleSettleMs } = s.push
  const stop: Child[] = []
  try {
    const upstream = await startUpstream('upstream', { stepMs })
    stop.push(upstream)
    const tokens = Array.from({ length: CLIENTS }, (_, i) => `c${i}:bench-client-${i}`).join(',')
    // the tasks are made in the simulated upstream, not submitted through the gateway: ownerless, so visible here
    const gateway = await startGateway('gateway', upstream, { LOG_LEVEL: 'warn', CLIENT_KEYS: tokens, OWNERLESS_TASKS: 'visible', REFRESH_INTERVAL_MS: String(INTERVAL_MS) })
    stop.push(gateway)
    const calls = (): Promise<number> => upstream.call<number>('requests')

    // 1. 200 subscribers over 20 live tasks, until every task is terminal
    // tasks submitted one by one over a step, so their changes fall at every phase of the refresher's interval;
    // then every subscriber at once
    const ids: string[] = []
    for (let k = 0; k < tasks; k++) {
      ids.push(...(await upstream.call<string[]>('live', { n: 1, outcome: 'SUCCESS' })))
      await sleep(stepMs / tasks)
    }
    const before = await calls()
    const started = Date.now()
    const subs = await openAll(
      Array.from({ length: subscribers }, (_, i) => `${gateway.url}/mj/task/${ids[i % tasks] as string}/events`),
      subscribers
    )
    await Promise.all(subs.map((x) => x.ended))
    const seconds = (Date.now() - started) / 1000
    const during = (await calls()) - before
    const routes = await upstream.call<Record<string, number>>('byRoute')
    await sleep(3 * INTERVAL_MS)
    const afterEnd = (await calls()) - before - during

    const latencies: number[] = []
    let ended = 0
    for (const sub of subs) {
      let last = ''
      sub.events.forEach((e, i) => {
        if (e.event === 'end') ended++
        if (e.event !== 'task') return
        const task = JSON.parse(e.data) as TaskJson
        if (i > 0 && task.status !== last) latencies.push(e.at - changedAt(task, stepMs))
        last = task.status
      })
    }
    latencies.sort((a, b) => a - b)
    const p50 = percentile(latencies, 50)
    const p99 = percentile(latencies, 99)
    const bound = Math.ceil((seconds * 1000) / INTERVAL_MS) + 5

    // 2. idle subscribers, on a replica that has had none: RSS after a full GC before them, right after they arrived,
    // and once they have sat idle for a while. Arriving, each leaves garbage that outlived a young-generation
    // collection (its request, its reply: promoted, then dead once its stream opens) between the long-lived sockets;
    // V8 compacts that old space once the replica is quiet (its memory reducer), and RSS falls to what holding the
    // subscribers costs. The goal is checked on that; the figure right after arrival is the peak an operator sizes for.
    const idleIds = await upstream.call<string[]>('live', { n: CLIENTS, outcome: 'never' })
    const idleUrls = Array.from({ length: idleSubscribers }, (_, i) => `${gateway.url}/mj/task/${idleIds[i % idleIds.length] as string}/events`)
    // every stream of part 1 closed (the gateway has seen the last close), then a moment for what closing left
    for (let i = 0; i < 300 && (await metric(gateway, 'mj_gateway_events_subscribers')) > 0; i++) await sleep(100)
    await sleep(500)
    const base = await gateway.call<MemoryFacts>('memory')
    const idle = await openAll(idleUrls, 500)
    const arrived = await gateway.call<MemoryFacts>('memory')
    await sleep(idleSettleMs)
    const held = await gateway.call<MemoryFacts>('memory')
    // (the gateway still holds them all: nothing was let go while they sat idle)
    const stillOpen = await metric(gateway, 'mj_gateway_events_subscribers')
    for (const x of idle) x.close()
    if (gateway.exit !== undefined) throw new Error(`the gateway exited during the push scenario${gateway.tail()}`)
    const perSubscriber = (held.rss - base.rss) / idleSubscribers
    const arrivedPerSubscriber = (arrived.rss - base.rss) / idleSubscribers
    const projected = perSubscriber * 10_000

    return {
      id: 'push',
      title: '3b. Push (server-sent events)',
      setup:
        `${subscribers} subscribers (GET /mj/task/:id/events) over ${tasks} live tasks of the simulated upstream (step ${stepMs / 1000} s: ` +
        `NOT_START, SUBMITTED, IN_PROGRESS, SUCCESS after ${((2 + 0.7) * stepMs) / 1000}–${((2 + 2) * stepMs) / 1000} s), ` +
        `from subscription until every stream ended; REFRESH_INTERVAL_MS=${INTERVAL_MS}, LOG_LEVEL=warn, ${CLIENTS} client tokens. ` +
        'Latency: from the moment the upstream task took a status (its own timeline) to the subscriber receiving the event. ' +
        `Memory: RSS after a full GC on a gateway that has had no idle subscribers: before ${fmt.int(idleSubscribers)} idle subscribers ` +
        `(tasks that never finish), right after they arrived (500 at a time, as fast as they connect), and after they sat idle for ${idleSettleMs / 1000} s ` +
        '(the goal is checked on this one: arriving leaves garbage in the old space that V8 compacts once the replica is quiet).',
      table: {
        head: ['measure', 'value'],
        rows: [
          ['seconds until every stream ended', seconds.toFixed(1)],
          ['upstream calls (all kinds)', fmt.int(during)],
          ['upstream calls in the 3 s after the last SUCCESS', fmt.int(afterEnd)],
          ['streams that ended with `end`', `${ended} of ${subscribers}`],
          ['status changes seen', fmt.int(latencies.length)],
          ['change → event p50', `${fmt.ms(p50)} ms`],
          ['change → event p99', `${fmt.ms(p99)} ms`],
          [`RSS before / right after they arrived / after ${idleSettleMs / 1000} s idle`, `${fmt.mib(base.rss)} / ${fmt.mib(arrived.rss)} / ${fmt.mib(held.rss)}`],
          [`RSS per idle subscriber, after ${idleSettleMs / 1000} s idle`, `${fmt.int(perSubscriber)} B`],
          ['RSS per idle subscriber, right after they arrived (the peak)', `${fmt.int(arrivedPerSubscriber)} B`],
          ['JS heap used per idle subscriber', `${fmt.int((held.heapUsed - base.heapUsed) / idleSubscribers)} B`],
          ['idle subscribers still open when measured', `${fmt.int(stillOpen)} of ${fmt.int(idleSubscribers)}`]
        ]
      },
      checks: [
        { name: 'push upstream calls', value: `${fmt.int(during)} in ${seconds.toFixed(0)} s`, goal: `≤ 1 per interval + 5 (${bound})`, met: during <= bound },
        { name: 'push calls after SUCCESS', value: fmt.int(afterEnd), goal: '0', met: afterEnd === 0 },
        { name: 'push change → event p99', value: `${fmt.ms(p99)} ms`, goal: `≤ ${INTERVAL_MS} ms (one interval)`, met: p99 !== undefined && p99 <= INTERVAL_MS },
        // (only if the gateway still held every one of them: fewer would cost less)
        { name: '10,000 idle subscribers', value: fmt.mib(projected), goal: `< ${fmt.mib(IDLE_GOAL_BYTES)}, all held`, met: projected < IDLE_GOAL_BYTES && stillOpen === idleSubscribers },
        { name: '10,000 subscribers right after they arrived (the peak)', value: fmt.mib(arrivedPerSubscriber * 10_000), goal: 'for information', met: undefined }
      ],
      notes: [
        `upstream requests by route since the simulated upstream started: ${Object.entries(routes).map(([r, n]) => `${r} ${n}`).join(', ')}`,
        ...(ended === subscribers ? [] : [`${subscribers - ended} stream(s) closed without an end event`])
      ],
      data: { subscribers, tasks, stepMs, seconds, upstreamCalls: during, afterEnd, latencies: { p50, p99, n: latencies.length }, memory: { base, arrived, held, perSubscriber, arrivedPerSubscriber, idleSubscribers, idleSettleMs } }
    }
  } finally {
    for (const c of stop.reverse()) await c.stop().catch(() => undefined)
  }
}
