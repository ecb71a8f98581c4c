import type { FastifyReply } from 'fastify'

/** Response headers as node:http's writeHead takes them: name, value, name, value… */
export type HeaderList = Array<string | number>

/** Sets a header list on a Fastify reply (the hit lane hands the same list to writeHead). */
export function replyHeaders(reply: FastifyReply, list: Readonly<HeaderList>): void {
  for (let i = 0; i < list.length; i += 2) reply.header(list[i] as string, list[i + 1])
}
