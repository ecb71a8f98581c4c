/**
 * @deprecated The fake upstream is src/demo/simulated-upstream.ts; import from there. This shim keeps tests
 * written against the old helper compiling while they move.
 */
import { startSimulatedUpstream, type Handler, type SimulatedUpstream } from '../../src/demo/simulated-upstream.js'

export { idFromUrl, imageUrlExpiringAt, taskBody } from '../../src/demo/simulated-upstream.js'
export type { Behavior, Handler, RecordedRequest } from '../../src/demo/simulated-upstream.js'
export type FakeUpstream = SimulatedUpstream

/** the old helper's default: any id fetched is a SUCCESS task */
export function startFakeUpstream(opts: { handler?: Handler } = {}): Promise<FakeUpstream> {
  return startSimulatedUpstream({ inventUnknownTasks: true, ...opts })
}
