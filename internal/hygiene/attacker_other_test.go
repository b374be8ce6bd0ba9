//go:build !linux

package hygiene

import (
	"fmt"
	"os"
)

// attackerStepEnv: see attacker_linux_test.go; the attack suite runs on
// Linux only.
const attackerStepEnv = "HYGIENE_ATTACKER_STEP"

func attackerStep(step string, _ []string) int {
	fmt.Fprintln(os.Stderr, "attacker step", step, "needs Linux")
	return 2
}
