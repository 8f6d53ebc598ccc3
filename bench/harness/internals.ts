/*
 * The one place the bench reaches into the built library's internals rather than its public
 * API: the hashing pool's defaults (its size, queue and wait), which the bench needs to size its
 * loads the way the example server (running on the plugin's defaults) sizes its pool. When lib/
 * moves them, only this path changes.
 */
export { DEFAULTS, defaultHashingConcurrency } from '../../dist/esm/options/defaults.js'
