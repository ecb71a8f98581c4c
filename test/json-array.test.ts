import t from 'tap'
import fc from 'fast-check'
import { arrayElementSources } from '../src/upstream/json-array.js'

t.test('each element source parses to the element, whatever the formatting', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.jsonValue()), fc.constantFrom(undefined, 0, 1, 2, '\t', ' \n '), (arr, indent) => {
      const text = JSON.stringify(arr, null, indent)
      const sources = arrayElementSources(text)
      t.equal(sources.length, arr.length)
      sources.forEach((s, i) => t.same(JSON.parse(s), JSON.parse(JSON.stringify(arr[i]))))
    }),
    { numRuns: 300 }
  )
})

t.test('element sources are the upstream bytes: escapes, brackets in strings and spacing kept', async (t) => {
  const a = '{"id":"1","imageUrl":"https://cdn/x.png?ex=1\\u0026is=2","prompt":"a [b] {c}, \\"d\\" \\\\"}'
  const b = '{ "id" : "2", "n": 1.50e3, "buttons": [ {"x":[1,2]} ] }'
  const text = ` [\n  ${a} ,\r\n\t${b}\n ] `
  t.same(arrayElementSources(text.trim()), [a, b])
  t.same(arrayElementSources('[]'), [])
  t.same(arrayElementSources('[ ]'), [])
  t.same(arrayElementSources('[null,1,"x",[],{}]'), ['null', '1', '"x"', '[]', '{}'])
})
