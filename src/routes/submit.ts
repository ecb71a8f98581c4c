import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { strictBody } from './strict-body.js'
import { forward, type ForwardDeps } from './forward.js'
import { pathsOfKind } from './passthrough-table.js'
import { notifySecret, notifyUrl, submitBody } from '../push/notify-hook.js'

/** The allowlist (docs/http-api.md §4) is config.passthroughRoutes: nothing else is routed, so nothing else reaches upstream. */
export { SUBMIT_KINDS } from './passthrough-table.js'

type JsonObject = Record<string, unknown>

const SubmitBody = Type.Object({}, { additionalProperties: true })

/**
 * The upstream would call any URL a client names in `notifyHook`. Removed case-insensitively and after
 * NFKC folding, because a Go relay matches JSON keys that way (`NOTIFYHOOK` and a Kelvin-sign `K` included).
 */
export function withoutNotifyHook(body: JsonObject): JsonObject {
  return Object.fromEntries(Object.entries(body).filter(([k]) => k.normalize('NFKC').toLowerCase() !== 'notifyhook'))
}


/**
 * POST /mj/submit/{kind}, /mj/insight-face/swap and any other submit-like path of PASSTHROUGH_ROUTES: a JSON object,
 * notifyHook removed unless ALLOW_NOTIFY_HOOK, forwarded once, under the scope's mode prefix (routes/mode-prefixes.ts).
 */
export async function submitRoutes(app: FastifyInstance, { config, upstream }: ForwardDeps): Promise<void> {
  const mode = app.prefix
  // docs/push.md §5: with PUBLIC_URL, every submit names the gateway's own callback URL
  const gatewayHook = config.publicUrl === '' ? undefined : notifyUrl(config.publicUrl, notifySecret(config.upstream.apiKey))
  for (const path of pathsOfKind(config.passthroughRoutes, 'submit')) {
    app.post<{ Body: JsonObject }>(
      path,
      { bodyLimit: config.submitMaxBodyBytes, schema: { body: SubmitBody }, validatorCompiler: strictBody },
      async (request, reply) => {
        const body = submitBody(request.body, config.allowNotifyHook, gatewayHook)
        // a submit spends money and is not idempotent: one try only
        return forward(upstream, reply, { method: 'POST', path: mode + path, body: Buffer.from(JSON.stringify(body)), idempotent: false })
      }
    )
  }
}
