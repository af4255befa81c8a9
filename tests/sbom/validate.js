#!/usr/bin/env node
// Validate the SBOMs that `distill build --sbom` writes.
//
//   node validate.js cyclonedx FILE...
//   node validate.js spdx FILE...
//
// CycloneDX files are checked against the CycloneDX 1.5 JSON schema that
// @cyclonedx/cyclonedx-library ships (its strict validator, run by ajv with
// remote schema loading disabled), then for unique bom-refs, dependency targets,
// license expressions and purls. SPDX files are checked against the SPDX 2.3
// specification's required fields, identifiers, relationships, license
// expressions and purls in plain JavaScript. Exit status: 0 when every file is
// valid, 1 when one is not (its errors go to stderr), 2 for a usage error.
'use strict'

const fs = require('node:fs')
const { Spec, Validation } = require('@cyclonedx/cyclonedx-library')
const { PackageURL } = require('packageurl-js')
const parseSpdxExpression = require('spdx-expression-parse')

const SPDX_ID = /^SPDXRef-[A-Za-z0-9.-]+$/
const LICENSE_REF = /^LicenseRef-[A-Za-z0-9.-]+$/
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/
const HEX = /^[0-9a-f]+$/

// Values that SPDX 2.3 allows: clause 7 lists the package checksum algorithms,
// primary package purposes and external reference categories (the SPDX 2.3 JSON
// schema also accepts PACKAGE_MANAGER), and clause 11 the relationship types.
const CHECKSUM_ALGORITHMS = new Set([
  'SHA1', 'SHA224', 'SHA256', 'SHA384', 'SHA512', 'MD2', 'MD4', 'MD5', 'MD6', 'SHA3-256',
  'SHA3-384', 'SHA3-512', 'BLAKE2b-256', 'BLAKE2b-384', 'BLAKE2b-512', 'BLAKE3', 'ADLER32'
])
const CHECKSUM_HEX_LENGTH = { SHA1: 40, SHA224: 56, SHA256: 64, SHA384: 96, SHA512: 128, MD5: 32 }
const PURPOSES = new Set([
  'APPLICATION', 'FRAMEWORK', 'LIBRARY', 'CONTAINER', 'OPERATING-SYSTEM', 'DEVICE', 'FIRMWARE',
  'SOURCE', 'ARCHIVE', 'FILE', 'INSTALL', 'OTHER'
])
const REFERENCE_CATEGORIES = new Set([
  'SECURITY', 'PACKAGE-MANAGER', 'PACKAGE_MANAGER', 'PERSISTENT-ID', 'OTHER'
])
const RELATIONSHIP_TYPES = new Set([
  'DESCRIBES', 'DESCRIBED_BY', 'CONTAINS', 'CONTAINED_BY', 'DEPENDS_ON', 'DEPENDENCY_OF',
  'DEPENDENCY_MANIFEST_OF', 'BUILD_DEPENDENCY_OF', 'DEV_DEPENDENCY_OF', 'OPTIONAL_DEPENDENCY_OF',
  'PROVIDED_DEPENDENCY_OF', 'TEST_DEPENDENCY_OF', 'RUNTIME_DEPENDENCY_OF', 'EXAMPLE_OF',
  'GENERATES', 'GENERATED_FROM', 'ANCESTOR_OF', 'DESCENDANT_OF', 'VARIANT_OF',
  'DISTRIBUTION_ARTIFACT', 'PATCH_FOR', 'PATCH_APPLIED', 'COPY_OF', 'FILE_ADDED', 'FILE_DELETED',
  'FILE_MODIFIED', 'EXPANDED_FROM_ARCHIVE', 'DYNAMIC_LINK', 'STATIC_LINK', 'DATA_FILE_OF',
  'TEST_CASE_OF', 'BUILD_TOOL_OF', 'DEV_TOOL_OF', 'TEST_OF', 'TEST_TOOL_OF', 'DOCUMENTATION_OF',
  'OPTIONAL_COMPONENT_OF', 'METAFILE_OF', 'PACKAGE_OF', 'AMENDS', 'PREREQUISITE_FOR',
  'HAS_PREREQUISITE', 'REQUIREMENT_DESCRIPTION_FOR', 'SPECIFICATION_FOR', 'OTHER'
])

function isNonEmptyString (v) {
  return typeof v === 'string' && v.length > 0
}

function isAbsoluteUrl (v) {
  try {
    return isNonEmptyString(v) && new URL(v).protocol.length > 1
  } catch {
    return false
  }
}

// Check a package URL and that it names the package it is attached to: the
// decoded version must equal the element's version, and a deb purl's name its
// name. Debian purls must also carry the arch and distro qualifiers.
function checkPurl (purl, where, pkg, errors) {
  let parsed
  try {
    parsed = PackageURL.fromString(purl)
  } catch (err) {
    errors.push(`${where}: purl ${JSON.stringify(purl)} is invalid: ${err.message}`)
    return
  }
  if (parsed.type !== 'deb' && parsed.type !== 'oci') {
    errors.push(`${where}: purl type ${parsed.type} is neither deb nor oci`)
  }
  if (parsed.version !== pkg.version) {
    errors.push(`${where}: purl version ${parsed.version} differs from ${pkg.version}`)
  }
  if (parsed.type === 'deb') {
    if (parsed.name !== pkg.name) {
      errors.push(`${where}: purl name ${parsed.name} differs from ${pkg.name}`)
    }
    for (const q of ['arch', 'distro']) {
      if (!isNonEmptyString(parsed.qualifiers?.[q])) {
        errors.push(`${where}: purl ${purl} has no ${q} qualifier`)
      }
    }
  }
  if (parsed.type === 'oci' && parsed.name !== parsed.name.toLowerCase()) {
    errors.push(`${where}: oci purl name ${parsed.name} is not lower case`)
  }
}

// Collect the license identifiers of a parsed SPDX expression.
function expressionLicenses (node, out = []) {
  if (node.license) out.push(node.license)
  if (node.left) expressionLicenses(node.left, out)
  if (node.right) expressionLicenses(node.right, out)
  return out
}

// Parse an SPDX license expression and return its identifiers. When it is
// invalid, record why and return null.
function checkExpression (expression, where, errors) {
  try {
    return expressionLicenses(parseSpdxExpression(expression))
  } catch (err) {
    errors.push(`${where}: ${JSON.stringify(expression)} is not an SPDX license expression: ${err.message}`)
    return null
  }
}

// CycloneDX -------------------------------------------------------------------

function schemaErrorText (e) {
  const params = e.params ? ` ${JSON.stringify(e.params)}` : ''
  return `schema: ${e.instancePath || '/'} ${e.message}${params}`
}

function checkComponent (comp, where, refs, errors) {
  const ref = comp['bom-ref']
  if (ref !== undefined) {
    if (refs.has(ref)) errors.push(`${where}: bom-ref ${ref} is not unique`)
    refs.add(ref)
  }
  if (comp.purl !== undefined) {
    checkPurl(comp.purl, where, { name: comp.name, version: comp.version }, errors)
  }
  for (const choice of comp.licenses ?? []) {
    if (choice.expression !== undefined) checkExpression(choice.expression, where, errors)
  }
}

async function validateCycloneDx (text) {
  let bom
  try {
    bom = JSON.parse(text)
  } catch (err) {
    return [`not JSON: ${err.message}`]
  }
  const errors = []
  const validator = new Validation.JsonStrictValidator(Spec.Version.v1dot5)
  const schemaErrors = await validator.validate(text)
  for (const e of schemaErrors ?? []) errors.push(schemaErrorText(e))
  if (bom.specVersion !== '1.5') {
    errors.push(`specVersion is ${JSON.stringify(bom.specVersion)}, expected "1.5"`)
  }

  const refs = new Set()
  if (bom.metadata?.component) {
    checkComponent(bom.metadata.component, 'metadata.component', refs, errors)
  }
  for (const [i, comp] of (bom.components ?? []).entries()) {
    checkComponent(comp, `components[${i}] ${comp.name}`, refs, errors)
  }
  for (const [i, dep] of (bom.dependencies ?? []).entries()) {
    for (const target of [dep.ref, ...(dep.dependsOn ?? [])]) {
      if (!refs.has(target)) errors.push(`dependencies[${i}]: ${target} is no bom-ref of this BOM`)
    }
  }
  return errors
}

// SPDX 2.3 --------------------------------------------------------------------

function checkSpdxHeader (doc, errors) {
  const need = (cond, message) => { if (!cond) errors.push(message) }
  need(doc.spdxVersion === 'SPDX-2.3', `spdxVersion is ${JSON.stringify(doc.spdxVersion)}, expected "SPDX-2.3"`)
  need(doc.dataLicense === 'CC0-1.0', 'dataLicense must be "CC0-1.0"')
  need(doc.SPDXID === 'SPDXRef-DOCUMENT', 'SPDXID must be "SPDXRef-DOCUMENT"')
  need(isNonEmptyString(doc.name), 'name is missing')
  need(isAbsoluteUrl(doc.documentNamespace) && !doc.documentNamespace.includes('#'),
    'documentNamespace must be an absolute URI without "#"')
  const info = doc.creationInfo ?? {}
  need(RFC3339_UTC.test(info.created ?? ''), 'creationInfo.created must be YYYY-MM-DDThh:mm:ssZ')
  need(Array.isArray(info.creators) && info.creators.length > 0 &&
    info.creators.every(c => /^(Tool|Organization|Person): .+/.test(c)),
  'creationInfo.creators must list "Tool: ...", "Organization: ..." or "Person: ..."')
}

function checkChecksums (pkg, where, errors) {
  for (const c of pkg.checksums ?? []) {
    if (!CHECKSUM_ALGORITHMS.has(c.algorithm)) {
      errors.push(`${where}: checksum algorithm ${c.algorithm} is not an SPDX 2.3 algorithm`)
    }
    const length = CHECKSUM_HEX_LENGTH[c.algorithm]
    if (!HEX.test(c.checksumValue ?? '') || (length && c.checksumValue.length !== length)) {
      errors.push(`${where}: ${c.algorithm} checksum ${c.checksumValue} is not lowercase hex of the right length`)
    }
  }
}

function checkLicenseField (pkg, field, where, usedRefs, errors) {
  const value = pkg[field]
  if (value === undefined || value === 'NONE' || value === 'NOASSERTION') return
  const ids = checkExpression(value, `${where} ${field}`, errors)
  for (const id of ids ?? []) if (id.startsWith('LicenseRef-')) usedRefs.add(id)
}

function checkSpdxPackage (pkg, where, usedRefs, errors) {
  const need = (cond, message) => { if (!cond) errors.push(`${where}: ${message}`) }
  need(isNonEmptyString(pkg.name), 'name is missing')
  need(pkg.downloadLocation === 'NONE' || pkg.downloadLocation === 'NOASSERTION' ||
    isAbsoluteUrl(pkg.downloadLocation), `downloadLocation ${pkg.downloadLocation} is not a URL, NONE or NOASSERTION`)
  need(pkg.filesAnalyzed === false || pkg.packageVerificationCode !== undefined,
    'a package with filesAnalyzed true needs a packageVerificationCode')
  need(pkg.supplier === undefined || pkg.supplier === 'NOASSERTION' ||
    /^(Person|Organization): .+/.test(pkg.supplier), `supplier ${pkg.supplier} is not "Organization: ..." or "Person: ..."`)
  need(pkg.primaryPackagePurpose === undefined || PURPOSES.has(pkg.primaryPackagePurpose),
    `primaryPackagePurpose ${pkg.primaryPackagePurpose} is not an SPDX 2.3 purpose`)
  checkChecksums(pkg, where, errors)
  checkLicenseField(pkg, 'licenseConcluded', where, usedRefs, errors)
  checkLicenseField(pkg, 'licenseDeclared', where, usedRefs, errors)
  for (const ref of pkg.externalRefs ?? []) {
    need(REFERENCE_CATEGORIES.has(ref.referenceCategory), `referenceCategory ${ref.referenceCategory} is invalid`)
    if (ref.referenceType === 'purl') {
      checkPurl(ref.referenceLocator, where, { name: pkg.name, version: pkg.versionInfo }, errors)
    }
  }
}

function checkExtractedLicenses (doc, usedRefs, errors) {
  const declared = new Set()
  for (const x of doc.hasExtractedLicensingInfos ?? []) {
    if (!LICENSE_REF.test(x.licenseId ?? '')) errors.push(`licenseId ${x.licenseId} is not LicenseRef-[A-Za-z0-9.-]+`)
    if (declared.has(x.licenseId)) errors.push(`licenseId ${x.licenseId} is listed twice`)
    if (!isNonEmptyString(x.extractedText)) errors.push(`${x.licenseId}: extractedText is missing`)
    declared.add(x.licenseId)
  }
  for (const id of usedRefs) {
    if (!declared.has(id)) errors.push(`${id} is used but not listed in hasExtractedLicensingInfos`)
  }
}

function checkRelationships (doc, ids, errors) {
  for (const id of doc.documentDescribes ?? []) {
    if (!ids.has(id)) errors.push(`documentDescribes names ${id}, which is no element of this document`)
  }
  let describes = (doc.documentDescribes ?? []).length
  for (const [i, r] of (doc.relationships ?? []).entries()) {
    if (!RELATIONSHIP_TYPES.has(r.relationshipType)) {
      errors.push(`relationships[${i}]: type ${r.relationshipType} is invalid`)
    }
    for (const id of [r.spdxElementId, r.relatedSpdxElement]) {
      if (!ids.has(id) && id !== 'NONE' && id !== 'NOASSERTION') {
        errors.push(`relationships[${i}]: ${id} is no element of this document`)
      }
    }
    if (r.spdxElementId === 'SPDXRef-DOCUMENT' && r.relationshipType === 'DESCRIBES') describes++
  }
  if (describes === 0) errors.push('the document describes no element (documentDescribes or a DESCRIBES relationship)')
}

function validateSpdx (text) {
  let doc
  try {
    doc = JSON.parse(text)
  } catch (err) {
    return [`not JSON: ${err.message}`]
  }
  const errors = []
  checkSpdxHeader(doc, errors)
  const ids = new Set(['SPDXRef-DOCUMENT'])
  const usedRefs = new Set()
  if (!Array.isArray(doc.packages)) errors.push('packages is missing')
  for (const [i, pkg] of (doc.packages ?? []).entries()) {
    const where = `packages[${i}] ${pkg.SPDXID}`
    if (!SPDX_ID.test(pkg.SPDXID ?? '')) errors.push(`${where}: SPDXID is not SPDXRef-[A-Za-z0-9.-]+`)
    if (ids.has(pkg.SPDXID)) errors.push(`${where}: SPDXID is not unique`)
    ids.add(pkg.SPDXID)
    checkSpdxPackage(pkg, where, usedRefs, errors)
  }
  checkExtractedLicenses(doc, usedRefs, errors)
  checkRelationships(doc, ids, errors)
  return errors
}

// Command line ----------------------------------------------------------------

const VALIDATORS = {
  cyclonedx: { label: 'CycloneDX 1.5', validate: validateCycloneDx },
  spdx: { label: 'SPDX 2.3', validate: validateSpdx }
}

async function main (argv) {
  const [format, ...files] = argv
  const validator = VALIDATORS[format]
  if (!validator || files.length === 0) {
    console.error('usage: node validate.js cyclonedx|spdx FILE...')
    return 2
  }
  let failed = false
  for (const file of files) {
    let errors
    try {
      errors = await validator.validate(fs.readFileSync(file, 'utf8'))
    } catch (err) {
      errors = [`cannot be read or checked: ${err.message}`]
    }
    if (errors.length === 0) {
      console.log(`${file}: valid ${validator.label}`)
      continue
    }
    failed = true
    console.error(`${file}: invalid ${validator.label}:`)
    for (const e of errors) console.error(`  ${e}`)
  }
  return failed ? 1 : 0
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    code => { process.exitCode = code },
    err => {
      console.error(`validate.js: ${err.stack}`)
      process.exitCode = 1
    })
}

module.exports = { validateCycloneDx, validateSpdx }
