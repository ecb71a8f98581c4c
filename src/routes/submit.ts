import type { FastifyInstance } from 'fastify'
import type { Ownership } from '../clients/ownership.js'
import { submittedTask } from '../clients/ownership.js'
import type { ClientKeyTable } from '../clients/client-keys.js'
import { clientOf } from '../clients/identity.js'
import { SubmitQuota } from '../clients/submit-quota.js'
import type { GatewayMetrics } from '../metrics/gateway-metrics.js'
import { QuotaExceededError } from '../http/errors.js'
import { foldedKey, scanJsonObjectAsync, type Member } from '../http/json-members.js'
import { NotAnObjectError, scanError } from './json-body.js'
import { forward, type ForwardDeps } from './forward.js'
import { pathsOfKind } from './passthrough-table.js'
import { notifySecret, notifyUrl, submitBody } from '../push/notify-hook.js'

/** The allowlist (docs/http-api.md §4) is config.passthroughRoutes: nothing else is routed, so nothing else reaches upstream. */
export { SUBMIT_KINDS } from './passthrough-table.js'

/**
 * Every task a submit names at the top level, as strings: a `taskId` (any spelling a relay would read as it), and on
 * simple-change (`contentNamesTask`) the first word of `content`, which is how that route names its task
 * (`{"content": "<taskId> U2"}`).
 */
export function namedTaskIds(body: Buffer, members: readonly Member[], contentNamesTask = false): string[] {
  const ids: string[] = []
  for (const m of members) {
    const key = foldedKey(body, m)
    if (key !== 'taskid' && !(contentNamesTask && key === 'content')) continue
    const raw = body.toString('utf8', m.valueStart, m.end)
    const value: unknown = JSON.parse(raw)
    // a number is an id too (relays accept both); anything else names no task
    if (typeof value === 'string') ids.push(key === 'content' ? (value.trim().split(/\s+/)[0] as string) : value)
    else if (typeof value === 'number') ids.push(raw)
  }
  return ids
}

export interface SubmitDeps extends ForwardDeps {
  ownership: Ownership
  clients: ClientKeyTable
  metrics: GatewayMetrics
  /** SUBMIT_QUOTA_PER_DAY; undefined when off */
  quota: SubmitQuota | undefined
}

/**
 * POST /mj/submit/{kind}, /mj/insight-face/swap and any other submit-like path of PASSTHROUGH_ROUTES, under the
 * scope's mode prefix (routes/mode-prefixes.ts), forwarded once. In a scope of its own whose JSON bodies arrive as
 * the raw bytes: checked and forwarded without being parsed into objects and serialised again (docs/tenancy.md §5:
 * byte for byte but a removed `notifyHook`, memory near one copy of the body, nesting deeper than 64 refused).
 */
export async function submitRoutes(app: FastifyInstance, { config, upstream, ownership, clients, metrics, quota }: SubmitDeps): Promise<void> {
  const mode = app.prefix
  // docs/push.md §5: with PUBLIC_URL, every submit names the gateway's own callback URL
  const gatewayHook = config.publicUrl === '' ? undefined : notifyUrl(config.publicUrl, notifySecret(config.upstream.apiKey))
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: config.submitMaxBodyBytes }, (_request, body, done) => {
    done(null, body)
  })
  for (const path of pathsOfKind(config.passthroughRoutes, 'submit')) {
    // the `action` label: `imagine`, `action`, …, or the path below /mj/ for other submit-like routes
    const action = path.replace(/^\/mj\/(?:submit\/)?/, '')
    app.post<{ Body: Buffer | string | undefined }>(path, { bodyLimit: config.submitMaxBodyBytes, config: { submit: true } }, async (request, reply) => {
      const raw = request.body
      // text/plain (Fastify's other parser) or no body at all: not an object
      if (!Buffer.isBuffer(raw)) throw new NotAnObjectError()
      const scanned = await scanJsonObjectAsync(raw)
      if (!scanned.ok) throw scanError(scanned.kind, scanned.reason)
      const client = clientOf(request, clients)
      // an action on another client's task is refused like one on an unknown task, before anything is spent
      for (const id of namedTaskIds(raw, scanned.members, path.endsWith('/simple-change'))) await ownership.assertReadable(client, id, path)
      if (quota !== undefined && !(await quota.admit(client))) {
        reply.header('retry-after', String(SubmitQuota.secondsToNextDay()))
        throw new QuotaExceededError(config.fairness.submitQuotaPerDay)
      }
      const body = submitBody(raw, scanned.members, config.allowNotifyHook, gatewayHook)
      metrics.clientSubmits.inc({ client: client.label, action })
      // a submit spends money and is not idempotent: one try only
      return forward(upstream, reply, { method: 'POST', path: mode + path, body, idempotent: false, client: client.name }, async (answer) => {
        const task = submittedTask(answer.body)
        // recorded before the answer leaves, so the client's first poll already finds it
        if (task !== undefined) await ownership.record(client, task.id, task.existing)
      })
    })
  }
}
