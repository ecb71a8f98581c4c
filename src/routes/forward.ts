import type { FastifyReply } from 'fastify'
import type { Config } from '../config.js'
import type { UpstreamClient, UpstreamRequest } from '../upstream/client.js'
import { takeAnswer, type Answer } from '../upstream/answer.js'
import { sendAnswer } from './send-answer.js'

/** What a pass-through route family is registered with. */
export interface ForwardDeps {
  config: Config
  upstream: UpstreamClient
}

/**
 * A pass-through call: the upstream's success or 4xx goes to the client as it came; anything else is a gateway error.
 * `onSuccess` runs before a success is sent (a submit records its task's owner there).
 */
export async function forward(
  upstream: UpstreamClient,
  reply: FastifyReply,
  req: UpstreamRequest,
  onSuccess?: (answer: Answer) => Promise<void>
): Promise<FastifyReply> {
  const taken = takeAnswer(await upstream.request(req))
  if (taken.kind === 'unusable') throw taken.error
  if (taken.kind === 'ok') await onSuccess?.(taken.answer)
  return sendAnswer(reply, taken.answer)
}
