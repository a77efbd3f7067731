//go:build race

package examples_test

// raceEnabled builds the commands under test with the race detector when
// the tests themselves run with it.
const raceEnabled = true
