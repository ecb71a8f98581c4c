import type { FastifySchema, FastifySchemaCompiler } from 'fastify'
import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

/**
 * Body schemas checked without Fastify's default type coercion, which would turn `{"ids":"x"}` into `["x"]`
 * and `[123]` into `["123"]`: a malformed body is a 400, never a guess.
 */
export const strictBody: FastifySchemaCompiler<FastifySchema> = ({ schema }) => {
  // route schemas here are TypeBox types
  const check = TypeCompiler.Compile(schema as TSchema)
  return (data: unknown) => {
    if (check.Check(data)) return { value: data }
    const first = check.Errors(data).First()
    /* c8 ignore next -- a failed Check always has a first error */
    const why = first === undefined ? 'is invalid' : `${first.path} ${first.message}`
    return { error: new Error(`body${why}`) }
  }
}
