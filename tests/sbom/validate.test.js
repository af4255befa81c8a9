// Run the unit test binary build/tests/test_sbom so that it copies the SPDX and
// CycloneDX documents it writes into a temporary directory, then check them with
// validate.js, and check that damaged copies of them are rejected.
// Build the binary first: make build/tests/test_sbom.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { validateCycloneDx, validateSpdx } = require('./validate.js')

const repo = path.resolve(__dirname, '..', '..')
const unitTest = path.join(repo, 'build', 'tests', 'test_sbom')
const script = path.join(__dirname, 'validate.js')
let dir

before(() => {
  if (!fs.existsSync(unitTest)) {
    throw new Error(`${unitTest} is missing; build it with make build/tests/test_sbom`)
  }
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'distill-sbom-'))
  execFileSync(unitTest, [], {
    cwd: path.join(repo, 'tests', 'unit'),
    env: { ...process.env, DISTILL_TEST_SBOM_DIR: dir },
    stdio: ['ignore', 'ignore', 'inherit']
  })
})

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

function load (name) {
  return JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'))
}

function writeCopy (name, doc) {
  const file = path.join(dir, name)
  fs.writeFileSync(file, JSON.stringify(doc))
  return file
}

function assertMentions (errors, text) {
  assert.ok(errors.some(e => e.includes(text)), `expected an error about ${text}, got:\n${errors.join('\n')}`)
}

test('CycloneDX document passes the 1.5 schema', async () => {
  const text = fs.readFileSync(path.join(dir, 'cyclonedx.json'), 'utf8')
  assert.deepEqual(await validateCycloneDx(text), [])
})

test('SPDX document passes the 2.3 checks', () => {
  const text = fs.readFileSync(path.join(dir, 'spdx.json'), 'utf8')
  assert.deepEqual(validateSpdx(text), [])
})

test('command line accepts both valid documents', () => {
  for (const [format, name] of [['cyclonedx', 'cyclonedx.json'], ['spdx', 'spdx.json']]) {
    const run = spawnSync(process.execPath, [script, format, path.join(dir, name)], { encoding: 'utf8' })
    assert.equal(run.status, 0, run.stderr)
    assert.match(run.stdout, /: valid /)
  }
})

test('command line rejects CycloneDX without bomFormat', () => {
  const bom = load('cyclonedx.json')
  delete bom.bomFormat
  const file = writeCopy('no-bomformat.json', bom)
  const run = spawnSync(process.execPath, [script, 'cyclonedx', file], { encoding: 'utf8' })
  assert.equal(run.status, 1)
  assert.match(run.stderr, /bomFormat/)
})

test('CycloneDX license id off the SPDX list is rejected', async () => {
  const bom = load('cyclonedx.json')
  bom.components[0].licenses = [{ license: { id: 'Not-A-Listed-License' } }]
  assertMentions(await validateCycloneDx(JSON.stringify(bom)), 'schema:')
})

test('CycloneDX duplicate bom-ref is rejected', async () => {
  const bom = load('cyclonedx.json')
  bom.components[1]['bom-ref'] = bom.components[0]['bom-ref']
  assertMentions(await validateCycloneDx(JSON.stringify(bom)), 'is not unique')
})

test('CycloneDX purl naming another version is rejected', async () => {
  const bom = load('cyclonedx.json')
  bom.components[0].version = '0.0-0'
  assertMentions(await validateCycloneDx(JSON.stringify(bom)), 'purl version')
})

test('SPDX without spdxVersion is rejected', () => {
  const doc = load('spdx.json')
  delete doc.spdxVersion
  assertMentions(validateSpdx(JSON.stringify(doc)), 'spdxVersion')
})

test('SPDX with an unlisted LicenseRef is rejected', () => {
  const doc = load('spdx.json')
  doc.hasExtractedLicensingInfos = doc.hasExtractedLicensingInfos.filter(x => x.licenseId !== 'LicenseRef-Artistic')
  assertMentions(validateSpdx(JSON.stringify(doc)), 'LicenseRef-Artistic is used but not listed')
})

test('SPDX invalid license expression is rejected', () => {
  const doc = load('spdx.json')
  doc.packages[1].licenseDeclared = 'GPL-2+ and BSD-3-clause'
  assertMentions(validateSpdx(JSON.stringify(doc)), 'is not an SPDX license expression')
})

test('SPDX purl naming another package is rejected', () => {
  const doc = load('spdx.json')
  const pkg = doc.packages[1]
  pkg.externalRefs[0].referenceLocator = pkg.externalRefs[0].referenceLocator.replace(pkg.name, 'other')
  assertMentions(validateSpdx(JSON.stringify(doc)), 'purl name')
})

test('SPDX duplicate SPDXID and dangling relationship are rejected', () => {
  const doc = load('spdx.json')
  doc.packages[2].SPDXID = doc.packages[1].SPDXID
  doc.relationships.push({ spdxElementId: 'SPDXRef-Image', relationshipType: 'CONTAINS', relatedSpdxElement: 'SPDXRef-Nothing' })
  const errors = validateSpdx(JSON.stringify(doc))
  assertMentions(errors, 'SPDXID is not unique')
  assertMentions(errors, 'SPDXRef-Nothing is no element')
})
