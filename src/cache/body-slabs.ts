/**
 * Where cached bodies live. A Buffer of its own per body costs ~450 bytes beside the bytes (its ArrayBuffer, the
 * native backing store and their bookkeeping), 15 % of a 3 KB task. So bodies are copied into shared slabs of
 * 1 MiB instead, each body a view into one. Slabs are append-only: bytes once written never change, so a view
 * handed out (to a response being written, say) stays valid whatever happens after.
 *
 * A slab is freed when no live body is left in it. One long-lived body must not pin a mostly dead slab, so a slab
 * whose live bytes fall under half of what was written to it is compacted: its live bodies are copied into the
 * slab being filled and their holders pointed at the copies. Memory for bodies thus stays under twice the live
 * bytes plus one slab. Bodies above 64 KiB get a Buffer of their own.
 */
export const SLAB_BYTES = 1 << 20
export const OWN_BUFFER_ABOVE = 64 * 1024

/** what holds a body: the store points it at a new copy when its slab is compacted */
export interface BodyHolder {
  body: Buffer
  slab: Slab | undefined
}

export class Slab {
  readonly buf = Buffer.allocUnsafeSlow(SLAB_BYTES)
  /** bytes written */
  used = 0
  /** bytes of bodies still held */
  live = 0
  readonly holders = new Set<BodyHolder>()
}

export class BodySlabs {
  private active: Slab | undefined
  private readonly all = new Set<Slab>()

  /** slabs in use (for tests and diagnostics) */
  get slabs(): number {
    return this.all.size
  }

  /** copies `body` into the store for `holder` (sets holder.body and holder.slab) */
  put(holder: BodyHolder, body: Buffer): void {
    if (body.length === 0 || body.length > OWN_BUFFER_ABOVE) {
      const own = Buffer.allocUnsafeSlow(body.length)
      body.copy(own)
      holder.body = own
      holder.slab = undefined
      return
    }
    const previous = this.active
    if (previous !== undefined && previous.used + body.length <= SLAB_BYTES) return place(previous, holder, body)
    const slab = new Slab()
    this.active = slab
    this.all.add(slab)
    place(slab, holder, body)
    if (previous !== undefined) this.settle(previous)
  }

  /** the holder no longer holds its body */
  release(holder: BodyHolder): void {
    const slab = holder.slab
    if (slab === undefined || !slab.holders.delete(holder)) return
    holder.slab = undefined
    slab.live -= holder.body.length
    if (slab !== this.active) this.settle(slab)
  }

  /** a slab no longer being filled: freed when empty, compacted when mostly dead */
  private settle(slab: Slab): void {
    if (slab.live === 0) this.all.delete(slab)
    else if (slab.live * 2 < slab.used) this.compact(slab)
  }

  private compact(slab: Slab): void {
    this.all.delete(slab)
    const holders = [...slab.holders]
    slab.holders.clear()
    for (const h of holders) this.put(h, h.body)
  }
}

function place(slab: Slab, holder: BodyHolder, body: Buffer): void {
  body.copy(slab.buf, slab.used)
  holder.body = slab.buf.subarray(slab.used, slab.used + body.length)
  holder.slab = slab
  slab.used += body.length
  slab.live += body.length
  slab.holders.add(holder)
}
