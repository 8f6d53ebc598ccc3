/*
 * The one place the bench reaches into the built library's internals rather than its public
 * API: the hashing pool's default size, which the bench needs to size its loads the way the
 * example server (running on the plugin's defaults) sizes its pool. When lib/ moves this
 * function, only this path changes.
 */
export { defaultHashingConcurrency } from '../../dist/esm/options/defaults.js'
