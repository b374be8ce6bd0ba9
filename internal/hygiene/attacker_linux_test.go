//go:build linux

package hygiene

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// attackerStepEnv makes the test binary perform one step of an attack
// (TestMain calls attackerStep) instead of running tests; the suite starts
// it as the attacker.
const attackerStepEnv = "HYGIENE_ATTACKER_STEP"

// attackerStep is the test binary's attacker mode:
//
//	swap A B        exchange A and B with renameat2(RENAME_EXCHANGE) in a loop until killed
//	dial NET ADDR   GET /metrics from ADDR and print what happened
func attackerStep(step string, args []string) int {
	switch step {
	case "swap":
		for {
			if err := unix.Renameat2(unix.AT_FDCWD, args[0], unix.AT_FDCWD, args[1], unix.RENAME_EXCHANGE); err != nil {
				fmt.Fprintln(os.Stderr, "swap:", err)
				return 1
			}
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		}
	case "dial":
		c, err := net.DialTimeout(args[0], args[1], 2*time.Second)
		if err != nil {
			fmt.Println("refused:", err)
			return 0
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: metrics\r\n\r\n")
		b, _ := io.ReadAll(io.LimitReader(c, 1<<20))
		fmt.Printf("read %d bytes\n%s", len(b), b)
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown attacker step", step)
	return 2
}
