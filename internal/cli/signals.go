package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/credhelper/credhelper/refresh"
)

// Main is the whole credhelper-full program: it runs os.Args with SIGINT,
// SIGTERM and SIGHUP handled as below and returns the exit code.
//
// The first SIGINT, SIGTERM or SIGHUP (a closed terminal) cancels everything the command can cancel
// and the command ends with 130 or 143 (128 + the signal), each face
// reporting the failure its protocol's way. If the issuer may already be
// answering a refresh, the command says so on one line and waits for that
// call, up to its deadline, so the new pair is journaled rather than lost;
// a second signal ends the process at once. Services (agent, dev-issuer)
// stop gracefully and keep their exit code; exec forwards signals to its
// child once the child runs and exits with the child's status.
func Main() int {
	sigs := make(chan os.Signal, 2)
	// SIGHUP too: a closed terminal or SSH session must not kill a
	// command between the issuer's answer and the journal.
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	return runWithSignals(os.Args, os.Stdin, os.Stdout, os.Stderr, sigs)
}

// signalPolicy says how the running command treats SIGINT and SIGTERM.
type signalPolicy int32

const (
	// signalsCancel: the first cancels the command, which then exits
	// 128+N; the second exits at once.
	signalsCancel signalPolicy = iota
	// signalsStopService: the first stops a service gracefully and its own
	// exit code stands; the second exits at once.
	signalsStopService
	// signalsForwarded: the command forwards them to a child and exits
	// with the child's status (exec, once its child runs).
	signalsForwarded
)

// setSignals sets how the command treats signals from now on.
func (a *app) setSignals(p signalPolicy) { a.signals.Store(int32(p)) }

// interrupted returns the signal that interrupted the command, or nil.
func (a *app) interrupted() os.Signal {
	s, _ := a.sig.Load().(os.Signal)
	return s
}

// signalExit is the exit status of a process ended by sig: 128 + N.
func signalExit(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 130
}

// runWithSignals runs args with the signals from sigs handled as Main
// says. The command runs on its own goroutine, so that a second signal
// ends the program even while the command waits.
func runWithSignals(args []string, stdin io.Reader, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newApp(args[0], stdin, stdout, stderr)
	done := make(chan int, 1)
	go func() { done <- a.main(ctx, args) }()
	var giveUp <-chan time.Time
	for {
		select {
		case <-giveUp:
			// Interrupted and still running, but not waiting for the
			// issuer: it is stuck in something that cannot be cancelled
			// (reading standard input, say).
			if !a.holding.Load() {
				fmt.Fprintf(stderr, "credhelper: %s\n", signalName(a.interrupted()))
				return signalExit(a.interrupted())
			}
		case code := <-done:
			if sig := a.interrupted(); sig != nil && signalPolicy(a.signals.Load()) == signalsCancel {
				return signalExit(sig)
			}
			return code
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP && signalPolicy(a.signals.Load()) == signalsStopService:
				// A service's own: the agent reloads on it.
			case signalPolicy(a.signals.Load()) == signalsForwarded:
				// The child gets it; its exit is the answer.
			case a.interrupted() == nil:
				a.sig.Store(sig)
				cancel()
				if signalPolicy(a.signals.Load()) == signalsCancel {
					giveUp = time.After(stuckGrace)
				}
			default:
				fmt.Fprintf(stderr, "credhelper: %s again: stopping now, without waiting\n", signalName(sig))
				return signalExit(a.interrupted())
			}
		}
	}
}

// signalName says what happened, for messages: "interrupted" (SIGINT) or
// "SIGTERM received".
func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM received"
	case syscall.SIGHUP:
		return "SIGHUP received (terminal closed)"
	}
	return "interrupted"
}

// issuerCallWatcher is what the command needs from the refresh engine to
// handle an interrupt precisely: whether an issuer call that may already
// have been delivered is in flight, and its deadline. The engine does not
// offer it yet; until it does, closeEngine treats any refresh still running
// after a short grace as such a call.
type issuerCallWatcher interface {
	IssuerCallInFlight() (deadline time.Time, ok bool)
}

// interruptGrace is how long closeEngine lets a refresh finish by itself
// after an interrupt before it says that it is waiting; stuckGrace is how
// long an interrupted command that is not waiting for the issuer may take
// to return before the program ends without it.
const (
	interruptGrace = 200 * time.Millisecond
	stuckGrace     = time.Second
)

// closeEngine closes e. Without an interrupt that is Engine.Close, which
// waits for a refresh in flight. After one, it returns at once unless an
// issuer call that may have been delivered is in flight: then it says so on
// one line and waits for it, at most until its deadline, so that the pair
// the issuer may be issuing is journaled. A second signal ends the process
// meanwhile (runWithSignals).
func (a *app) closeEngine(e *refresh.Engine, w *wired) error {
	sig := a.interrupted()
	if sig == nil {
		return e.Close()
	}
	done := make(chan error, 1)
	go func() { done <- e.CloseNow() }()
	var limit time.Duration
	if wc, ok := any(e).(issuerCallWatcher); ok {
		deadline, busy := wc.IssuerCallInFlight()
		if !busy {
			return nil
		}
		limit = time.Until(deadline)
	} else {
		select {
		case err := <-done:
			return err
		case <-time.After(interruptGrace):
		}
		// The holder may call twice (a maybe-delivered call is retried
		// once), then journals and commits.
		limit = 2*w.profile.IssuerTimeout.Duration + time.Second
	}
	a.holding.Store(true)
	defer a.holding.Store(false)
	if !a.quietInterrupt {
		fmt.Fprintf(a.stderr, "credhelper: %s while the issuer may be answering a refresh of %s: waiting up to %v for it so the new pair is saved (interrupt again to stop now)\n",
			signalName(sig), w.key, limit.Round(time.Second))
	}
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		return fmt.Errorf("the refresh of %s did not finish within %v; stopping without it", w.key, limit.Round(time.Second))
	}
}
